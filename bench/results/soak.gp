set terminal svg size 900,420 dynamic
set output "/work/wt-soak/bench/results/soak.svg"
set title "weir soak: RSS and mem/ live bytes, 10 min mixed traffic"
set xlabel "seconds"
set ylabel "MiB"
set key bottom right
set grid
set arrow from 119.8, graph 0 to 119.8, graph 1 nohead dt 2
plot "/work/wt-soak/bench/results/soak.dat" using 1:($2/1024) with lines title "RSS", "" using 1:($3/1048576) with lines title "mem live", 19.832*1.05 with lines dt 3 title "median +5%", 19.832*0.95 with lines dt 3 title "median -5%"
