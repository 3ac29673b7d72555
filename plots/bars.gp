## bars.gp: template for sp_figure_bars (src/figure.c).
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
##   @NG@ @NS@            number of groups (x categories) and series (bars per group)
##   @SLABELS@            array initializer: the @NS@ series labels ("" for none)
##   @XTICS@              tic list ("label" 0, "label" 1, ...): the group labels
##                        at the group centres (every 2nd, 5th, ... one when
##                        even rotated labels would overlap)
##   @XROTATE@            "norotate" or "rotate by 45 right" (from the label widths)
##   @LOGY@               1 for a log y axis, 0 for a linear one
##   @YRANGE@             [0:*] (linear, values >= 0), [*:0], or [*:*]
##   @KEY@                1 to show the key (more than one series has a label)
##   @BMARGIN@            bottom margin in character heights: room for the tic
##                        labels, x label and key; -1 (automatic) without a key
##   @WIDTH@ @HEIGHT@     canvas size in pixels (wider for many bars, taller
##                        for rotated labels)
##
## The data file is a matrix: row g is group g, column s is series s. Group
## g is drawn at x = g, its bars side by side; NaN draws no bar.
# Written by superpose (sp_figure_bars). Re-render in this folder with:
#     gnuplot @NAME@.gp
# Edit freely: the values are in @DATA@ (one row per group, one column per series).

ng = @NG@
ns = @NS@
logy = @LOGY@
show_key = @KEY@
array slabel[@NS@] = @SLABELS@

bw = 0.8 / ns                       # width of one bar; a group spans 0.8
xoff(s) = (s - (ns + 1) / 2.0) * bw

set terminal pngcairo size @WIDTH@,@HEIGHT@ noenhanced font "Sans,13"
set output '@PNG@'
set title "@TITLE@" font ",15"
set xlabel "@XLABEL@"
set ylabel "@YLABEL@"

set xrange [-0.6:ng-0.4]
set xtics @XTICS@ @XROTATE@ nomirror scale 0
set yrange @YRANGE@
set ytics nomirror
if (logy) { set logscale y; set format y "%g" }
set grid ytics lw 0.5 lc rgb "#e0e0e0"
set border 3 lw 1
# The key goes under the plot, where it can hide no bar.
if (show_key) { set key bmargin center horizontal noautotitle } else { unset key }
set bmargin @BMARGIN@

array colour[8] = ["0072b2", "d55e00", "009e73", "cc79a7", "e69f00", "56b4e9", "000000", "8c564b"]
do for [i=1:8] { set style line i lc rgb "#".colour[i] }
set style fill solid 0.85 noborder

plot for [s=1:ns] '@DATA@' using ($0 + xoff(s)):(column(s)):(bw) with boxes \
         ls ((s-1) % 8 + 1) title slabel[s]

set terminal svg size @WIDTH@,@HEIGHT@ noenhanced font "Sans,13" background "white"
set output '@SVG@'
replot
set output
