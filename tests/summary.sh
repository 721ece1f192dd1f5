#!/bin/bash
# Prints the suite's closing line from build/.results and fails if any test did.
results=${1:-build/.results}
pass=$(grep -c ' PASS$' "$results" 2>/dev/null)
fail=$(grep -c ' FAIL$' "$results" 2>/dev/null)
if [ "${fail:-0}" -gt 0 ]; then
    echo "failed tests:"; grep ' FAIL$' "$results" | sed 's/^/  /'
fi
echo "${pass:-0} passed, ${fail:-0} failed"
[ "${fail:-0}" -eq 0 ] && [ "${pass:-0}" -gt 0 ]
