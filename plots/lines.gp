## lines.gp: template for sp_figure_lines (src/figure.c).
##
## Lines starting with '##' document the template and are not copied into
## the generated NAME.gp. Every other line is copied with its placeholders
## replaced; a placeholder is @NAME@ (capitals, digits, '_'), and a token
## the code does not know is an error, so typos fail loudly.
##
## Placeholders (strings arrive escaped for a gnuplot "..." string):
##   @NAME@               the figure's file stem (names are [A-Za-z0-9._+-] only)
##   @DATA@ @PNG@ @SVG@   NAME.dat, NAME.png, NAME.svg: relative to the figure
##                        folder, which is gnuplot's working directory
##   @TITLE@ @XLABEL@ @YLABEL@   text, for use inside "..."
##   @LOGX@ @LOGY@        1 for a log axis, 0 for a linear one
##   @XRANGE@ @YRANGE@    [lo:hi], * for an automatic bound
##   @KEY@                1 to show the key (more than one series has a title)
##   @NH@                 number of reference lines drawn (0..32)
##   @NHA@                array size for them: @NH@, or 1 when there are none
##   @HY@                 array initializer of their y values, highest first
##                        ([NaN] when there are none)
##   @HLABELS@            array initializer of their labels, same order
##   @RMARGIN@            right margin in characters: room for the reference
##                        labels, or -1 (automatic) when there are none
##   @PLOT@               the plot list, one element per series:
##                          'NAME.dat' index I using 1:2 with STYLE ls K title "T"
##                        STYLE linespoints, points or lines; K = 1..8 for lines
##                        and linespoints, 11..18 for points (colour I mod 8);
##                        series 9-16 use K + 20 (the same colours, squares,
##                        dashed lines)
##
## The data file holds one block per series, blocks separated by two blank
## lines, so that `index I` is series I. Non-finite values are written NaN:
## gnuplot reads NaN as undefined, skips that point and breaks the line
## there (rather than joining across the gap, which `set datafile missing
## "NaN"` would do).
##
## A first pass on the `unknown` terminal plots the reference lines as
## constants, so that an automatic y range includes them, and fixes that
## range. The lines are then drawn as arrows across the plot, each label at
## the right edge beside its line, moved down when it would overlap the
## label above. @PLOT@ is used twice: in the first pass and the real one.
# Written by superpose (sp_figure_lines). Re-render in this folder with:
#     gnuplot @NAME@.gp
# Edit freely: the data are in @DATA@ (one block per series: `index 0`, `index 1`, ...).

logx = @LOGX@
logy = @LOGY@
show_key = @KEY@
nh = @NH@
array hy[@NHA@] = @HY@
array hlabel[@NHA@] = @HLABELS@

set title "@TITLE@" font ",15"
set xlabel "@XLABEL@"
set ylabel "@YLABEL@"
set xrange @XRANGE@
set yrange @YRANGE@
if (logx) { set logscale x; set format x "%g" }
if (logy) { set logscale y; set format y "%g" }
set grid lw 0.5 lc rgb "#e0e0e0"
set border lw 1
set tics nomirror
set rmargin @RMARGIN@
# An automatic x range ends at the data (not the next tic: a log axis would
# gain a decade on each side), with a little room.
set autoscale xfix
set offsets graph 0.02, graph 0.02, 0, 0
# The key goes under the plot, where it can hide no data.
if (show_key) { set key bmargin center horizontal noautotitle; set bmargin @BMARGIN@ } else { unset key }

# Series colours (Okabe-Ito, then brown). Styles 1-8: lines and linespoints;
# 11-18: points only, small and translucent ("#AARRGGBB", AA = transparency)
# so that a cloud of thousands of points shows its density.
array colour[8] = ["0072b2", "d55e00", "009e73", "cc79a7", "e69f00", "56b4e9", "000000", "8c564b"]
do for [i=1:8] {
    set style line i lc rgb "#".colour[i] lw 2 pt 7 ps 0.8
    set style line i+10 lc rgb "#88".colour[i] pt 7 ps 0.45
    set style line i+20 lc rgb "#".colour[i] lw 2 pt 5 ps 0.8 dt 2
    set style line i+30 lc rgb "#88".colour[i] pt 5 ps 0.45
}
# Reference lines in the first pass (the drawn ones are arrows, below).
set style line 100 lc rgb "#909090" lw 1 dt (6, 4)

# First pass: the reference lines, plotted as constants, stretch an automatic
# y range to include them; the range found is then kept.
set terminal unknown
plot for [i=1:nh] hy[i] with lines ls 100 notitle, \
     @PLOT@
ylo = GPVAL_Y_MIN
yhi = GPVAL_Y_MAX
set yrange [ylo:yhi]

# A log axis spanning under two decades gets labels at 2 and 5 as well.
if (logx && GPVAL_X_MAX / GPVAL_X_MIN < 100) {
    do for [k=floor(log10(GPVAL_X_MIN)):ceil(log10(GPVAL_X_MAX))] {
        set xtics add (2 * 10.0**k, 5 * 10.0**k)
    }
}
if (logy && yhi / ylo < 100) {
    do for [k=floor(log10(ylo)):ceil(log10(yhi))] { set ytics add (2 * 10.0**k, 5 * 10.0**k) }
}

# Each reference line spans the plot; its label sits at the right edge, moved
# down when it would overlap the label above (lines are highest first).
frac(y) = logy ? log(y / ylo) / log(yhi / ylo) : (y - ylo) / (yhi - ylo)
hsep = 0.034   # a label's height as a fraction of the plot height
array hpos[@NHA@]
do for [i=1:nh] {
    set arrow 1000+i from graph 0, first hy[i] to graph 1, first hy[i] nohead back \
        lw 1 lc rgb "#909090" dt (6, 4)
    hpos[i] = frac(hy[i])
    if (i > 1 && hpos[i] > hpos[i-1] - hsep) { hpos[i] = hpos[i-1] - hsep }
    set label 1000+i hlabel[i] at graph 1, graph hpos[i] offset char 0.6, 0 left \
        font ",11" tc rgb "#505050"
}

set terminal pngcairo size 900,650 noenhanced font "Sans,13"
set output '@PNG@'
plot @PLOT@

set terminal svg size 900,650 noenhanced font "Sans,13" background "white"
set output '@SVG@'
replot
set output
