set terminal svg size 1000,480 dynamic font "sans,11"
set output "/work/main/bench/results/peers-p99-w2.svg"
set title "p99 latency, ms, 2 workers (groups: upstream/frontend/body)"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
set xtics nomirror
set yrange [0:*]
set grid ytics
plot for [i=2:7] "/work/main/bench/results/peers-raw/plot-p99-w2.dat" using i:xtic(1) title columnheader(i)
