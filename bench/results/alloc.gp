set terminal svg size 1400,520 dynamic font 'sans,12'
set output 'alloc.svg'
set multiplot layout 1,2
set title 'Trace: CPU ns per allocation pair (median; floor = harness alone)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set ylabel 'ns per pair'
set yrange [0:*]
set grid ytics
set key below horizontal
set xtics rotate by -20
plot 'alloc.dat' using 2:xtic(1) title '1 thread', 'alloc.dat' using 3:xtic(1) title '2 threads', 'alloc.dat' using 4:xtic(1) title '8 threads'
set title 'Trace: callgrind instructions per pair minus the floor (1 thread)'
set style histogram clustered gap 1
set ylabel 'instructions per pair'
plot 'alloc-cg.dat' using 2:xtic(1) title 'allocator share' lc rgb '#4477aa'
unset multiplot
