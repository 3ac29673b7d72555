## lines.gp: template for sp_figure_lines (src/figure.c).
##
## Lines starting with '##' document the template and are not copied. Every
## other line is copied with its placeholders (@NAME@, capitals) replaced.
##
## Placeholders (strings arrive escaped for a gnuplot "..." string):
##   @NAME@ @DATA@ @PNG@ @SVG@   file stem and the files beside this script
##   @TITLE@ @XLABEL@ @YLABEL@    text, for use inside "..."
##   @LOGX@ @LOGY@                "set logscale x" / "unset logscale x" (and y)
##   @XRANGE@ @YRANGE@            [lo:hi], * for automatic
##   @KEY@                        "set key ..." or "unset key"
##   @REFS@                       one dashed horizontal line and a label per
##                                reference value (set arrow / set label lines)
##   @PLOT@                       the plot list: one element per data block
##
## The data file holds one block per series (gnuplot `index`), blocks
## separated by two blank lines; NaN marks a missing value (not drawn).
# Written by superpose (sp_figure_lines). Re-render in this folder with:
#     gnuplot @NAME@.gp
# Edit freely: the data are in @DATA@, one block per series.

set terminal pngcairo size 900,650 noenhanced font "Sans,13"
set output '@PNG@'
set title "@TITLE@" font ",15"
set xlabel "@XLABEL@"
set ylabel "@YLABEL@"
set datafile missing "NaN"
@LOGX@
@LOGY@
set xrange @XRANGE@
set yrange @YRANGE@
set grid lw 0.5 lc rgb "#e0e0e0"
set border lw 1
set rmargin 8
@KEY@
@REFS@
plot @PLOT@

set terminal svg size 900,650 noenhanced font "Sans,13" background "white"
set output '@SVG@'
replot
set output
