# ratio.awk - the headline table of bench/run.sh intake: for each (fsync, mix, conns) the
# gateway's median 2xx answers/s (column ok_rps; rps when absent) [min–max] next to reference (a) (HTTP ceiling, no Redis; rows
# with fsync "none") and reference (b) (naive MULTI/XADD/HSET/EXEC per request, same fsync),
# and the ratios of the medians. When the rows have server "gwapi" (the gateway with
# saga.workers false: the intake path alone, GW_API=1), its figures follow in three more columns.
#   awk -F'\t' -f bench/ratio.awk [-v section=intake] rows.tsv
function sortn(a, n,    i, j, t) {
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
}
function median(a, n) { sortn(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function stat(k, what,    n, i, a) {
  n = cnt[k, what]; if (n == 0) return ""
  for (i = 1; i <= n; i++) a[i] = v[k, what, i]
  sortn(a, n)
  lo[k, what] = a[1]; hi[k, what] = a[n]
  return median(a, n)
}
function cell(k, what, fmt,    m) {
  m = stat(k, what)
  if (m == "") return "-"
  if (cnt[k, what] == 1) return sprintf(fmt, m)
  return sprintf(fmt, m) " [" sprintf(fmt, lo[k, what]) "–" sprintf(fmt, hi[k, what]) "]"
}
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; R = ("ok_rps" in col) ? "ok_rps" : "rps"; next }
section != "" && $(col["section"]) != section { next }
{
  f = $(col["fsync"]); mx = $(col["mix"]); c = $(col["conns"]); s = $(col["server"])
  if (s == "refa") { ka = mx SUBSEP c; n = ++cnt[ka, "a"]; v[ka, "a", n] = $(col[R]) + 0
                     n = ++cnt[ka, "ap99"]; v[ka, "ap99", n] = $(col["p99"]) + 0; next }
  k = f SUBSEP mx SUBSEP c
  if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
  if (s == "gwapi") api = 1
  n = ++cnt[k, s]; v[k, s, n] = $(col[R]) + 0
  n = ++cnt[k, s "p99"]; v[k, s "p99", n] = $(col["p99"]) + 0
}
END {
  h = "| fsync | mix | conns | gateway 2xx/s | ref (a) 2xx/s | ref (b) 2xx/s | gateway / ref (a) | gateway / ref (b) | p99 ms gateway | p99 ms ref (a) | p99 ms ref (b) |"
  u = "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  if (api) { h = h " workers off 2xx/s | workers off / ref (b) | p99 ms workers off |"; u = u "---:|---:|---:|" }
  print h; print u
  for (r = 1; r <= nk; r++) {
    k = order[r]; split(k, p, SUBSEP); ka = p[2] SUBSEP p[3]
    g = stat(k, "gw"); a = stat(ka, "a"); b = stat(k, "refb")
    ra = (g != "" && a != "" && a > 0) ? sprintf("%.2f×", g / a) : "-"
    rb = (g != "" && b != "" && b > 0) ? sprintf("%.2f×", g / b) : "-"
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", p[1], p[2], p[3],
      cell(k, "gw", "%.0f"), cell(ka, "a", "%.0f"), cell(k, "refb", "%.0f"), ra, rb,
      cell(k, "gwp99", "%.2f"), cell(ka, "ap99", "%.2f"), cell(k, "refbp99", "%.2f")
    if (api) {
      w = stat(k, "gwapi")
      rw = (w != "" && b != "" && b > 0) ? sprintf("%.2f×", w / b) : "-"
      printf " %s | %s | %s |", cell(k, "gwapi", "%.0f"), rw, cell(k, "gwapip99", "%.2f")
    }
    printf "\n"
  }
}
