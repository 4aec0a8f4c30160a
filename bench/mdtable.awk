# mdtable.awk - aggregates benchmark rows (TSV with a header line) into a markdown table.
#
#   awk -F'\t' -f bench/mdtable.awk -v group="fsync,mix,conns,server" \
#       -v metrics="rps:%.0f:range:requests/s,p99:%.2f:med:p99 ms" rows.tsv
#
# group: columns that identify a row of the table (rows keep their first-seen order).
# metrics: comma-separated name:format:aggregate[:title], aggregate one of
#   range  median [min–max]     med  median     max  maximum     min  minimum
#   sum    total                okof "k/n" rows where the value is 1 (values "-" not counted)
# filter (optional): "column=value" keeps only matching rows.
# versus (optional): comma-separated metric names; after the table, one line per row but the
#   first with the ratio of each of these medians to the first row's.
function sortn(a, n,    i, j, t) {
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
}
function median(a, n) { sortn(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function rowmedian(key, i,    j, m, b) {
  m = 0
  for (j = 1; j <= cnt[key]; j++) if (val[key, i, j] != "-" && val[key, i, j] != "") b[++m] = val[key, i, j] + 0
  return m ? median(b, m) : 0
}
BEGIN {
  ng = split(group, G, ",")
  nm = split(metrics, M, ",")
  for (i = 1; i <= nm; i++) {
    k = split(M[i], parts, ":")
    mname[i] = parts[1]; mfmt[i] = parts[2]; magg[i] = parts[3]
    mtitle[i] = (k >= 4 && parts[4] != "") ? parts[4] : parts[1]
  }
  if (filter != "") { split(filter, F, "="); fcol = F[1]; fval = F[2] }
}
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
  if (filter != "" && $(col[fcol]) != fval) next
  key = ""
  for (i = 1; i <= ng; i++) key = key (i > 1 ? SUBSEP : "") $(col[G[i]])
  if (!(key in cnt)) { order[++nkeys] = key; cnt[key] = 0; for (i = 1; i <= ng; i++) gval[key, i] = $(col[G[i]]) }
  n = ++cnt[key]
  for (i = 1; i <= nm; i++) val[key, i, n] = $(col[mname[i]])
}
END {
  line = "|"; sep = "|"
  for (i = 1; i <= ng; i++) { line = line " " G[i] " |"; sep = sep "---|" }
  for (i = 1; i <= nm; i++) { line = line " " mtitle[i] " |"; sep = sep "---:|" }
  print line; print sep
  for (r = 1; r <= nkeys; r++) {
    key = order[r]; n = cnt[key]
    line = "|"
    for (i = 1; i <= ng; i++) line = line " " gval[key, i] " |"
    for (i = 1; i <= nm; i++) {
      m = 0; ok = 0; tot = 0; delete a
      for (j = 1; j <= n; j++) {
        v = val[key, i, j]
        if (v == "-" || v == "") continue
        a[++m] = v + 0; tot += v + 0; if (v + 0 == 1) ok++
      }
      if (m == 0) { cell = "-" }
      else if (magg[i] == "okof") { cell = ok "/" m }
      else if (magg[i] == "sum") { cell = sprintf(mfmt[i], tot) }
      else {
        sortn(a, m)
        if (magg[i] == "max") cell = sprintf(mfmt[i], a[m])
        else if (magg[i] == "min") cell = sprintf(mfmt[i], a[1])
        else if (magg[i] == "med") cell = sprintf(mfmt[i], median(a, m))
        else if (m == 1) cell = sprintf(mfmt[i], a[1])
        else cell = sprintf(mfmt[i], median(a, m)) " [" sprintf(mfmt[i], a[1]) "–" sprintf(mfmt[i], a[m]) "]"
      }
      line = line " " cell " |"
    }
    print line
  }
  if (versus == "") exit
  nv = split(versus, V, ",")
  print ""
  for (r = 2; r <= nkeys; r++) {
    line = "-"
    for (i = 1; i <= ng; i++) line = line " " G[i] " " gval[order[r], i]
    line = line " against"
    for (i = 1; i <= ng; i++) line = line " " G[i] " " gval[order[1], i]
    line = line ":"
    for (x = 1; x <= nv; x++) {
      for (i = 1; i <= nm; i++) if (mname[i] == V[x]) break
      line = line (x > 1 ? "," : "") " " mtitle[i] " " \
        sprintf("%.2f", rowmedian(order[r], i) / rowmedian(order[1], i)) "x"
    }
    print line " (medians)"
  }
}
