## bars.gp: template for sp_figure_bars (src/figure.c): grouped bars.
##
## Placeholders: @NAME@ @DATA@ @PNG@ @SVG@ @TITLE@ @XLABEL@ @YLABEL@
## (escaped text), @NCOL@ (series + 1), @LOGY@ ("set logscale y" or
## "unset logscale y"), @XROTATE@ ("norotate" or "rotate by 45 right").
## The data file starts with a header row naming the columns (the group
## label, then one title per series), then one row per group.
# Written by superpose (sp_figure_bars). Re-render in this folder with:
#     gnuplot @NAME@.gp
# Edit freely: the values are in @DATA@ (one row per group).

set terminal pngcairo size 1000,600 noenhanced font "Sans,13"
set output '@PNG@'
set title "@TITLE@" font ",15"
set xlabel "@XLABEL@"
set ylabel "@YLABEL@"
set datafile missing "NaN"
@LOGY@
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics @XROTATE@ nomirror scale 0
set grid ytics lw 0.5 lc rgb "#e0e0e0"

set key top right
plot for [i=2:@NCOL@] '@DATA@' using i:xtic(1) title columnheader(i)

set terminal svg size 1000,600 noenhanced font "Sans,13" background "white"
set output '@SVG@'
replot
set output
