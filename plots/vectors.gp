## vectors.gp: template for sp_figure_vectors (src/figure.c): arrows from
## the origin, equal aspect, the unit circle drawn faintly.
##
## Placeholders: @NAME@ @DATA@ @PNG@ @SVG@ @TITLE@ (escaped text), @R@ (half
## width of the square view, fitted to the longest vector).
## The data file has one row per vector: x y "label".
# Written by superpose (sp_figure_vectors). Re-render in this folder with:
#     gnuplot @NAME@.gp
# Edit freely: the vectors are in @DATA@ (x, y, label).

r = @R@
set terminal pngcairo size 700,700 noenhanced font "Sans,13"
set output '@PNG@'
set title "@TITLE@" font ",14"
set size ratio -1
set xrange [-r:r]
set yrange [-r:r]
set grid lw 0.5 lc rgb "#e8e8e8"
set xzeroaxis lt 1 lc rgb "#bbbbbb"
set yzeroaxis lt 1 lc rgb "#bbbbbb"
set object 1 circle at 0,0 size 1 fs empty border lc rgb "#aaaaaa" dt 2
unset key
plot '@DATA@' using (0):(0):1:2 with vectors head filled size r/25,20 lw 2.5 lc rgb "#0072b2", \
     '' using ($1*1.1):($2*1.1):3 with labels font ",12" tc rgb "#333333"

set terminal svg size 700,700 noenhanced font "Sans,13" background "white"
set output '@SVG@'
replot
set output
