# Reads `go test -v` output and prints each failed test with the lines it logged.
# go test -v prints a test's log lines as they happen, under "=== RUN/CONT/NAME" headers,
# and its "--- FAIL" line after them, so the lines are kept per test until its verdict.
/^=== (RUN|CONT|NAME|PAUSE) / { cur = $3; next }
/^[ \t]*--- FAIL: / {
  print
  if ($3 in buf) { printf "%s", buf[$3]; delete buf[$3] }
  next
}
/^[ \t]*--- (PASS|SKIP): / { delete buf[$3]; delete n[$3]; next }
/^(ok|FAIL|PASS)([ \t]|$)/ { cur = ""; next }
cur != "" && n[cur]++ < 80 { buf[cur] = buf[cur] $0 "\n" }
