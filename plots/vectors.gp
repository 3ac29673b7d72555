## vectors.gp: template for sp_figure_vectors (src/figure.c).
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
##   @TITLE@              text, for use inside "..."
##   @NP@ @N@             number of panels, vectors per panel
##   @R@                  half-width of every panel's square view: 1.2 x the
##                        longest vector of all panels (1 if all are zero)
##   @ROWS@ @COLS@        the panel grid
##   @WIDTH@ @HEIGHT@     canvas size in pixels
##   @LABELS@             array initializer: the @N@ vector labels
##   @PTITLES@            array initializer: the @NP@ panel titles ("" for none)
##   @PNOTES@             array initializer: per panel, "" or a note saying how
##                        many vectors were not finite and so not drawn
##
## The data file holds one block per panel (blocks separated by two blank
## lines, so `index P` is panel P), one row "x y" per vector; NaN marks a
## vector that is not drawn.
# Written by superpose (sp_figure_vectors). Re-render in this folder with:
#     gnuplot @NAME@.gp
# Edit freely: the vectors are in @DATA@ (one block per panel, one row x y per vector).

np = @NP@
n = @N@
r = @R@
array vlabel[@N@] = @LABELS@
array ptitle[@NP@] = @PTITLES@
array pnote[@NP@] = @PNOTES@

# Each label sits just beyond its arrow's tip, along the arrow.
pad = 0.075 * r
vlen(x, y) = sqrt(x * x + y * y)
tipx(x, y) = vlen(x, y) > 0 ? x * (1 + pad / vlen(x, y)) : 0
tipy(x, y) = vlen(x, y) > 0 ? y * (1 + pad / vlen(x, y)) : 0

set size ratio -1
set xrange [-r:r]
set yrange [-r:r]
# Tics: a round step near r / 1.5, so at most two labels on each side of 0.
tdec = 10 ** floor(log10(r / 1.5))
tstep = (r / 1.5 / tdec >= 5 ? 5 : r / 1.5 / tdec >= 2 ? 2 : 1) * tdec
set xtics tstep
set ytics tstep
set tics nomirror out scale 0.5
set grid lw 0.5 lc rgb "#eeeeee"
set xzeroaxis lt 1 lw 0.5 lc rgb "#c0c0c0"
set yzeroaxis lt 1 lw 0.5 lc rgb "#c0c0c0"
set object 1 circle at first 0, 0 size first 1 fs empty border lc rgb "#b0b0b0" dt (4, 4) lw 1 behind
unset key

do for [out=1:2] {
    if (out == 1) {
        set terminal pngcairo size @WIDTH@,@HEIGHT@ noenhanced font "Sans,13"
        set output '@PNG@'
    } else {
        set terminal svg size @WIDTH@,@HEIGHT@ noenhanced font "Sans,13" background "white"
        set output '@SVG@'
    }
    set multiplot layout @ROWS@,@COLS@ title "@TITLE@" font ",15"
    do for [p=1:np] {
        set title ptitle[p] font ",13"
        set label 1 pnote[p] at graph 0.02, graph 0.03 left font ",10" tc rgb "#b00000" front
        plot '@DATA@' index (p-1) using (0):(0):1:2 with vectors \
                 head filled size screen 0.012,22 lw 2 lc rgb "#0072b2", \
             '' index (p-1) using (tipx($1, $2)):(tipy($1, $2)):(vlabel[int($0)+1]) \
                 with labels font ",12" tc rgb "#202020"
    }
    unset multiplot
}
set output
