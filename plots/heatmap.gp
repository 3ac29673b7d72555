## heatmap.gp: template for sp_figure_heatmap (src/figure.c).
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
##   @TITLE@ @XLABEL@ @YLABEL@ @CBLABEL@   text, for use inside "..."
##   @NX@ @NY@            number of columns (x categories) and rows (y categories)
##   @XTICS@ @YTICS@      tic lists ("label" 0, "label" 1, ...): one label per cell centre
##   @XROTATE@            "norotate" or "rotate by 45 right" (chosen from the label widths)
##   @CBMIN@ @CBMAX@      colour range: zmin/zmax when given, else the finite data range
##   @LABELS@             1 to print each cell's value on it, 0 not to (also 0
##                        when the labels would not fit their cells even at 6 pt)
##   @LABELFMT@           sprintf format for the cell labels, e.g. %.2f
##   @CELLFONT@           font size for the cell labels (fitted to the cell size)
##
## The data file is a matrix: data row iy (0 = first, drawn at the bottom)
## holds the nx values of that row, NaN for a missing cell. It is read one
## column at a time (not with `matrix`, which warns on every NaN) and each
## cell is drawn as a filled box, so the SVG stays vector and NaN cells stay
## blank.
# Written by superpose (sp_figure_heatmap). Re-render in this folder with:
#     gnuplot @NAME@.gp
# Edit freely: the data are in @DATA@ (rows = y categories, columns = x).

nx = @NX@
ny = @NY@
cbmin = @CBMIN@
cbmax = @CBMAX@
show_labels = @LABELS@
labelfmt = "@LABELFMT@"

set terminal pngcairo size 900,700 noenhanced font "Sans,13"
set output '@PNG@'

set title "@TITLE@" font ",15"
set xlabel "@XLABEL@"
set ylabel "@YLABEL@"
set cblabel "@CBLABEL@"

# Categorical axes: one tic label at each cell centre, no tic marks.
set xrange [-0.5:nx-0.5]
set yrange [-0.5:ny-0.5]
set xtics @XTICS@ @XROTATE@ nomirror scale 0
set ytics @YTICS@ nomirror scale 0
set cbrange [cbmin:cbmax]
set cbtics nomirror
set border lw 1
unset key

# viridis (9 stops)
set palette defined (0 '#440154', 1 '#472d7b', 2 '#3b528b', 3 '#2c728e', \
    4 '#21908c', 5 '#27ad81', 6 '#5dc863', 7 '#aadc32', 8 '#fde725')
set colorbox vertical

# Each cell is a box about one pixel larger than its half-width on every
# side, so that anti-aliased edges never leave a light seam between cells.
set style fill solid 1.0 noborder
halfx = 0.5 + nx / 600.0
halfy = 0.5 + ny / 500.0

# Cell labels: white on the dark (low) end of viridis, black on the light end,
# grey "n/a" on the blank missing cells.
cellfrac(v) = (v - cbmin) / (cbmax - cbmin)
celltext(i) = valid(i) ? sprintf(labelfmt, column(i)) : "n/a"
cellcolor(i) = !valid(i) ? 0x707070 : (cellfrac(column(i)) > 0.55 ? 0x000000 : 0xffffff)

# `for [i=1:0]` runs no iteration: that is how show_labels = 0 drops the labels.
plot for [i=1:nx] '@DATA@' using (i-1):0:(halfx):(halfy):(column(i)) \
         with boxxyerror fillcolor palette, \
     for [i=1:(show_labels ? nx : 0)] '@DATA@' using (i-1):0:(celltext(i)):(cellcolor(i)) \
         with labels textcolor rgb variable font ",@CELLFONT@"

set terminal svg size 900,700 noenhanced font "Sans,13" background "white"
set output '@SVG@'
replot
set output
