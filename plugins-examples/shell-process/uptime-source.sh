#!/bin/sh
# uptime: an Uplink process plugin (a source) in POSIX shell.
#
# Emits one record per `interval` seconds with the board's uptime and load average, read from /proc:
#   {"uptime_s":3605.2,"load1":0.08,"load5":0.12,"load15":0.09}
# `count` records, then `done` (0: until Uplink stops it). Protocol: docs/writing-a-plugin.md.
set -eu

# 1. init -> hello. The config arrives as JSON; a shell reads the two numbers it needs with sed.
read -r init
count=$(printf '%s\n' "$init" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
interval=$(printf '%s\n' "$init" | sed -n 's/.*"interval":\([0-9.]*\).*/\1/p')
count=${count:-0}
interval=${interval:-5}
printf '%s\n' '{"type":"hello","protocol":1,"name":"uptime","role":"source","output":"record","summary":"uptime and load average from /proc","options":[{"name":"interval","type":"float","default":"5","description":"seconds between records"},{"name":"count","type":"int","default":"0","description":"records to send, 0 for no end"}]}'

# 2. events. This source never reads its stdin again: on shutdown Uplink closes it and then sends SIGTERM,
#    whose default action ends the script, which is all a source like this needs.
sent=0
while [ "$count" -eq 0 ] || [ "$sent" -lt "$count" ]; do
    read -r up _ < /proc/uptime
    read -r l1 l5 l15 _ < /proc/loadavg
    printf '{"type":"events","events":[{"uptime_s":%s,"load1":%s,"load5":%s,"load15":%s}]}\n' "$up" "$l1" "$l5" "$l15"
    sent=$((sent + 1))
    if [ "$count" -eq 0 ] || [ "$sent" -lt "$count" ]; then sleep "$interval"; fi
done
printf '%s\n' '{"type":"done"}'
