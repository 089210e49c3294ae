#!/bin/sh
# append: an Uplink process plugin (a sink) in POSIX shell.
#
# Appends the events of each batch to the file `path` (one line per batch: its JSON list of events), then
# acknowledges the batch, which is when Uplink tells the source its events were delivered.
set -eu

read -r init
path=$(printf '%s\n' "$init" | sed -n 's/.*"path":"\([^"]*\)".*/\1/p')
if [ -z "$path" ]; then
    printf '%s\n' '{"type":"error","message":"config.path is required: the file to append to"}'
    exit 1
fi
printf '%s\n' '{"type":"hello","protocol":1,"name":"append","role":"sink","input":"record"}'

while read -r line; do
    case $line in
    '{"type":"shutdown"'*)
        exit 0
        ;;
    '{"type":"batch","id":'*)
        id=$(printf '%s\n' "$line" | sed -n 's/^{"type":"batch","id":\([0-9]*\),.*/\1/p')
        events=$(printf '%s\n' "$line" | sed -n 's/^{"type":"batch","id":[0-9]*,"events":\(.*\)}$/\1/p')
        printf '%s\n' "$events" >> "$path"
        printf '{"type":"ack","id":%s}\n' "$id"
        ;;
    esac
done
