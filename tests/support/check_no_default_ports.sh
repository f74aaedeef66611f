#!/usr/bin/env bash
# Fails if a test or CI script starts `outboxd run` without choosing its admin
# and metrics addresses: the defaults (127.0.0.1:7700, 127.0.0.1:9187) may be a
# developer's running relay. C++ tests are held to the same rule at run time by
# Subprocess::Start (tests/support/subprocess.h); this covers the shell scripts.
# scripts/demo.sh is left out on purpose: it runs outboxd as a user would.
#
#   tests/support/check_no_default_ports.sh [REPO_DIR]
set -euo pipefail

ROOT=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"
status=0
checked=0
while IFS= read -r -d '' file; do
  [[ $file == scripts/demo.sh ]] && continue
  # One logical line per command: backslash continuations joined.
  while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*# ]] && continue
    [[ $line =~ (^|[[:space:]\"/])outboxd\"?[[:space:]]+run([[:space:]]|$) ]] || continue
    [[ $line =~ ^[[:space:]]*echo ]] && continue
    checked=$((checked + 1))
    for flag in admin_listen metrics_listen; do
      if [[ $line != *"--$flag"* ]]; then
        echo "$file: 'outboxd run' without --$flag (pass --$flag=127.0.0.1:0 or --$flag=''):" >&2
        echo "  $line" >&2
        status=1
      elif [[ $line =~ --$flag=[^[:space:]]*:(7700|9187)([[:space:]]|$) ]]; then
        echo "$file: 'outboxd run' on a default port ($flag):" >&2
        echo "  $line" >&2
        status=1
      fi
    done
  done < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$file")
done < <(git ls-files -z -- '*.sh' 2>/dev/null || find tests scripts -name '*.sh' -print0)
echo "checked $checked 'outboxd run' command lines in shell scripts"
exit $status
