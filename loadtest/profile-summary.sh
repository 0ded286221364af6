#!/usr/bin/env bash
# Where a process's CPU went, from a perf recording, by part: the kernel (network stack and
# system calls), the allocator, the AWS SDK (SigV4 signing apart from the rest), hyper and
# http, tokio, axum and tower, telemetry, warmgate's own code. Self time, so each sample
# counts once. Usage: loadtest/profile-summary.sh perf.data
set -euo pipefail
data="${1:?usage: $0 perf.data}"
[ -f "$data" ] || { echo "error: no perf recording at $data" >&2; exit 1; }
perf report -i "$data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
  awk '
    /^#/ || NF < 4 { next }
    {
      pct = $1; sub(/%/, "", pct); dso = $2
      sym = $0; sub(/^[^\]]*\] /, "", sym)
      if (dso ~ /kernel/) part = "kernel: network stack, system calls, scheduling"
      else if (sym ~ /malloc|free|realloc|_int_|mi_|__rdl_|__rust_alloc|__rust_dealloc|unlink_chunk|RawVec|finish_grow/) part = "allocator and growing buffers"
      else if (sym ~ /memmove|memcpy|memset|memchr|memcmp|strlen/) part = "memory copies and scans (libc)"
      else if (sym ~ /aws_sigv4|sha2|hmac|Sha256|aws_lc|ring::|hex::/) part = "AWS SDK: SigV4 signing and hashing"
      else if (sym ~ /aws_smithy|aws_sdk|aws_runtime|aws_types|aws_credential|aws_config/) part = "AWS SDK: orchestrator, interceptors, serialisation"
      else if (sym ~ /hyper|http::|httparse|h2::/) part = "hyper and http (server and client)"
      else if (sym ~ /tokio|mio::|parking_lot|crossbeam/) part = "tokio runtime and locks"
      else if (sym ~ /axum|tower|matchit/) part = "axum and tower"
      else if (sym ~ /tracing|metrics|hdrhistogram|quanta/) part = "tracing and metrics"
      else if (sym ~ /warmgate::/) part = "warmgate"
      else if (sym ~ /core::fmt|alloc::fmt|fmt::/) part = "formatting"
      else if (sym ~ /bytes::|hashbrown|futures_util|alloc::vec|alloc::string|vec_deque|slice::sort|Hasher|base64/) part = "containers (bytes, maps, vectors) and future combinators"
      else part = "other"
      share[part] += pct
    }
    END { for (part in share) printf "%.1f\t%s\n", share[part], part }' |
  sort -t$'\t' -k1,1 -rn |
  awk -F'\t' 'BEGIN { print "| where the CPU went (self time) | share |"; print "| --- | ---: |" }
    { printf "| %s | %s%% |\n", $2, $1 }'
