#!/bin/sh
# Write the version file, then serve /www (CGI scripts under /cgi-bin) until SIGTERM.
# As PID 1, httpd itself would ignore SIGTERM; this shell stops it like a well-behaved
# app: stop accepting, let the requests in flight (httpd's forked children) finish, exit.
echo "$VERSION" > /www/version
httpd -f -p "${BIND:-127.0.0.1}:${PORT:-8000}" -h /www &
httpd_pid=$!

count_others() {  # sets $others: live processes besides this shell (no fork: no $(...))
    others=0
    for stat in /proc/[0-9]*/stat; do
        read -r pid _ state _ < "$stat" 2>/dev/null || continue
        [ "$pid" = 1 ] || [ "$state" = Z ] || others=$((others + 1))
    done
}

stop() {
    kill -TERM "$httpd_pid" 2>/dev/null
    tries=0
    count_others
    while [ "$others" -gt 0 ] && [ "$tries" -lt 300 ]; do
        sleep 0.1
        tries=$((tries + 1))
        count_others
    done
    exit 0
}
trap stop TERM INT
wait "$httpd_pid"
