# fish completion for esctl. Commands and options are listed here (keep them in step
# with `esctl CMD --help`); queue and stream names come from the binary:
# `esctl [--store PATH] __complete queues|streams [PREFIX]`.

# Options that take a value in the next word, for every command.
function __esctl_takes_value
    contains -- $argv[1] --store --color --busy-timeout --meta --id --expect --batch \
        --category --from --type --count -n --prefix --stream --max-attempts --ack-timeout \
        --on-poison --max --lease --delay --reason --exec --pipe --projection --into --parallel \
        --max-events --to --queue --log --since --until --format --max-lag --max-age \
        --max-parked --max-retrying
end

# The words before the cursor that are not options or option values: the command,
# the queue subcommand, then the positional arguments.
function __esctl_words
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l skip 0
    for t in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch $t
            case '--*=*'
            case '-?*'
                __esctl_takes_value $t; and set skip 1
            case '*'
                printf '%s\n' $t
        end
    end
end

# --store PATH of the command line, as arguments for esctl.
function __esctl_store_args
    set -l tokens (commandline -opc)
    set -l store
    for i in (seq 2 (count $tokens))
        switch $tokens[$i]
            case '--store=*'
                set store (string replace -- --store= '' $tokens[$i])
            case --store
                set -q tokens[(math $i + 1)]; and set store $tokens[(math $i + 1)]
        end
    end
    if test -n "$store"
        printf '%s\n' --store (string replace -r -- '^~/' "$HOME/" $store)
    end
end

function __esctl_queues
    set -l bin (commandline -opc)[1]
    $bin (__esctl_store_args) __complete queues 2>/dev/null
end

function __esctl_streams
    set -l bin (commandline -opc)[1]
    set -l prefix (commandline -ct)
    string match -q -- '-*' $prefix; and return
    if test -n "$prefix"
        $bin (__esctl_store_args) __complete streams $prefix 2>/dev/null
    else
        $bin (__esctl_store_args) __complete streams 2>/dev/null
    end
end

# Categories: stream names up to their first `-`.
function __esctl_categories
    string match -q -- '*-*' (commandline -ct); and return
    __esctl_streams | string replace -r -- '-.*' '' | sort -u
end

# DATA of append given as @FILE.
function __esctl_at_files
    set -l cur (commandline -ct)
    string match -q -- '@*' $cur; or return
    __fish_complete_path (string sub -s 2 -- $cur) | string replace -r -- '^' '@'
end

function __esctl_needs_command
    set -l w (__esctl_words)
    not set -q w[1]
end

# __esctl_is CMD [SUB]: the command, and queue subcommand, being completed.
function __esctl_is
    set -l w (__esctl_words)
    test "$w[1]" = "$argv[1]"; or return 1
    not set -q argv[2]; or test "$w[2]" = "$argv[2]"
end

# __esctl_nargs N CMD...: the command is one of CMD, and N words that are not options
# (the command included) come before the cursor: `__esctl_nargs 1 read` completes the
# first argument of read, `__esctl_nargs 1 queue` the queue subcommand.
function __esctl_nargs
    set -l w (__esctl_words)
    contains -- "$w[1]" $argv[2..-1]; or return 1
    test (count $w) -eq $argv[1]
end

# Completing the NAME of a queue subcommand that takes an existing queue.
function __esctl_queue_name
    set -l w (__esctl_words)
    test "$w[1]" = queue; and test (count $w) -eq 2
    and contains -- "$w[2]" status pull ack nack drain parked retry reset delete
end

function __esctl_prev_is
    set -l tokens (commandline -opc)
    test "$tokens[-1]" = "$argv[1]"
end

complete -c esctl -f

# Global options, before or after the command.
complete -c esctl -l store -r -F -d 'The store file'
complete -c esctl -l json -d 'Machine output: NDJSON, or one JSON object'
complete -c esctl -s q -l quiet -d 'No output except errors'
complete -c esctl -l color -x -a 'auto always never' -d 'When to colour the output'
complete -c esctl -l busy-timeout -x -d 'How long to wait for a lock (250ms 5s 2m 1h)'
complete -c esctl -l version -d 'Print the version and exit'
complete -c esctl -s h -l help -d 'Print help and exit'

# Commands.
set -l __esctl_commands \
    init 'Create an empty store' \
    append 'Append events to a stream' \
    import 'Append events from NDJSON, as produced by export' \
    export 'Write events as NDJSON, in position order' \
    read 'Read the events of a stream, a category or all streams' \
    tail 'Print the last events, and follow new ones' \
    show 'Print one event in full, by position or id' \
    streams 'List the streams of the store' \
    stats 'Summarise the store' \
    queue 'Create, inspect, consume and replay projector queues' \
    rebuild 'Build a query db from scratch and atomically replace it' \
    verify 'Check the store, its queues, or a delivery log' \
    check 'Check queues against thresholds (exit 9 on a breach)' \
    help 'Show the help of a command'
for i in (seq 1 2 (count $__esctl_commands))
    set -l name $__esctl_commands[$i]
    set -l desc $__esctl_commands[(math $i + 1)]
    complete -c esctl -n __esctl_needs_command -a $name -d $desc
    complete -c esctl -n '__esctl_nargs 1 help' -a $name -d $desc
end

set -l __esctl_queue_commands \
    create 'Create a queue' \
    ls 'List all queues' \
    status 'Show the state of a queue' \
    pull 'Lease and print deliverable events' \
    ack 'Acknowledge events' \
    nack 'Report events as failed' \
    drain 'Deliver events to a command or into a query db' \
    parked 'List parked events' \
    retry 'Put parked events back' \
    reset 'Replay the queue from a point' \
    delete 'Delete a queue'
for i in (seq 1 2 (count $__esctl_queue_commands))
    set -l name $__esctl_queue_commands[$i]
    set -l desc $__esctl_queue_commands[(math $i + 1)]
    complete -c esctl -n '__esctl_nargs 1 queue' -a $name -d $desc
    complete -c esctl -n '__esctl_is help queue; and __esctl_nargs 2 help' -a $name -d $desc
end

# Stream and queue names.
complete -c esctl -n '__esctl_nargs 1 append read tail export' -a '(__esctl_streams)' -d stream
complete -c esctl -n __esctl_queue_name -a '(__esctl_queues)' -d queue

# append
complete -c esctl -n '__esctl_is append' -l meta -x -d 'The event metadata (JSON)'
complete -c esctl -n '__esctl_is append' -l id -x -d 'The event id (UUID)'
complete -c esctl -n '__esctl_is append' -l expect -x -a 'any none exists' -d 'Expected stream version: any, none, exists or N'
complete -c esctl -n '__esctl_is append' -l ndjson -d 'Append many events, one per NDJSON line of FILE or stdin'
complete -c esctl -n '__esctl_is append; and __esctl_prev_is --ndjson' -F -a - -d 'standard input'
complete -c esctl -n '__esctl_nargs 3 append' -a '(__esctl_at_files)'

# import
complete -c esctl -n '__esctl_is import' -l batch -x -d 'Commit every N lines (default 10000)'
complete -c esctl -n '__esctl_is import' -l ignore-versions -d 'Append each event at the end of its stream'
complete -c esctl -n '__esctl_nargs 1 import' -F -a - -d 'standard input'

# export
complete -c esctl -n '__esctl_is export' -l all -d 'All streams'
complete -c esctl -n '__esctl_is export' -l category -x -a '(__esctl_categories)' -d 'The streams of one category'
complete -c esctl -n '__esctl_is export' -l from -x -d 'Start at this global position'

# --since/--until (read, tail, export), --format (read, tail, queue pull)
complete -c esctl -n '__esctl_is read' -l since -x -d 'Only events recorded at or after TIME (RFC 3339, date, 15m)'
complete -c esctl -n '__esctl_is read' -l until -x -d 'Only events recorded at or before TIME'
complete -c esctl -n '__esctl_is tail' -l since -x -d 'Only events recorded at or after TIME (RFC 3339, date, 15m)'
complete -c esctl -n '__esctl_is tail' -l until -x -d 'Only events recorded at or before TIME'
complete -c esctl -n '__esctl_is export' -l since -x -d 'Only events recorded at or after TIME (RFC 3339, date, 15m)'
complete -c esctl -n '__esctl_is export' -l until -x -d 'Only events recorded at or before TIME'
complete -c esctl -n '__esctl_is read' -l format -x -d 'One line per event from TEMPLATE ({position} {data.PATH} ...)'
complete -c esctl -n '__esctl_is tail' -l format -x -d 'One line per event from TEMPLATE ({position} {data.PATH} ...)'
complete -c esctl -n '__esctl_is queue pull' -l format -x -d 'One line per event from TEMPLATE ({attempt} {lease} ...)'

# check
complete -c esctl -n '__esctl_is check' -l queue -x -a '(__esctl_queues)' -d 'Check only this queue'
complete -c esctl -n '__esctl_is check' -l max-lag -x -d 'Breach when more than N events are not acked'
complete -c esctl -n '__esctl_is check' -l max-age -x -d 'Breach when the oldest unacked event is older than DUR'
complete -c esctl -n '__esctl_is check' -l max-parked -x -d 'Breach when more than N events are parked'
complete -c esctl -n '__esctl_is check' -l max-retrying -x -d 'Breach when more than N events wait for a retry'

# read
complete -c esctl -n '__esctl_is read' -l all -d 'All streams, in position order'
complete -c esctl -n '__esctl_is read' -l category -x -a '(__esctl_categories)' -d 'The streams of one category'
complete -c esctl -n '__esctl_is read' -l type -x -d 'Only events of this type'
complete -c esctl -n '__esctl_is read' -l from -x -d 'Start at this version or position'
complete -c esctl -n '__esctl_is read' -l count -x -d 'At most N events'
complete -c esctl -n '__esctl_is read' -l backwards -d 'Newest first'

# tail
complete -c esctl -n '__esctl_is tail' -l all -d 'All streams'
complete -c esctl -n '__esctl_is tail' -l category -x -a '(__esctl_categories)' -d 'The streams of one category'
complete -c esctl -n '__esctl_is tail' -l type -x -d 'Only events of this type'
complete -c esctl -n '__esctl_is tail' -s n -l count -x -d 'Print the last N events (default 10)'
complete -c esctl -n '__esctl_is tail' -s f -l follow -d 'Then print new events as they are committed'

# streams
complete -c esctl -n '__esctl_is streams' -l category -x -a '(__esctl_categories)' -d 'Only the streams of one category'
complete -c esctl -n '__esctl_is streams' -l prefix -x -a '(__esctl_streams)' -d 'Only the streams whose names start with P'

# queue create
complete -c esctl -n '__esctl_is queue create' -l from -x -a 'start end' -d 'Where the queue starts: start, end or a position'
complete -c esctl -n '__esctl_is queue create' -l stream -x -a '(__esctl_streams)' -d 'Match streams by glob'
complete -c esctl -n '__esctl_is queue create' -l category -x -a '(__esctl_categories)' -d 'Match the streams of a category'
complete -c esctl -n '__esctl_is queue create' -l type -x -d 'Match only events of this type'
complete -c esctl -n '__esctl_is queue create' -l max-attempts -x -d 'Park an event after N failures (default 5)'
complete -c esctl -n '__esctl_is queue create' -l ack-timeout -x -d 'Lease of a delivery (250ms 5s 2m 1h)'
complete -c esctl -n '__esctl_is queue create' -l on-poison -x -a 'block park' -d 'What a parked event does to its stream'

# queue pull, nack
complete -c esctl -n '__esctl_is queue pull' -l max -x -d 'Lease at most N events (default 1)'
complete -c esctl -n '__esctl_is queue pull' -l lease -x -d 'Lease them for DUR'
complete -c esctl -n '__esctl_is queue nack' -l delay -x -d 'Deliver again no sooner than DUR'
complete -c esctl -n '__esctl_is queue nack' -l reason -x -d 'Why the events failed'

# queue drain
complete -c esctl -n '__esctl_is queue drain' -l exec -x -a '(__fish_complete_command)' -d 'Run CMD per batch, NDJSON on stdin'
complete -c esctl -n '__esctl_is queue drain' -l pipe -x -a '(__fish_complete_command)' -d 'Keep CMD running, one ack/nack line per event'
complete -c esctl -n '__esctl_is queue drain' -l projection -r -F -d 'Apply events with this projection file'
complete -c esctl -n '__esctl_is queue drain' -l into -r -F -d 'The query db to keep up to date'
complete -c esctl -n '__esctl_is queue drain' -l batch -x -d 'At most N events per batch'
complete -c esctl -n '__esctl_is queue drain' -l parallel -x -d 'Run up to K batches at once (default 1)'
complete -c esctl -n '__esctl_is queue drain' -l follow -d 'Wait for new events instead of stopping'
complete -c esctl -n '__esctl_is queue drain' -l max-events -x -d 'Stop after N events'

# queue retry, reset, delete
complete -c esctl -n '__esctl_is queue retry' -l all -d 'Retry every parked event'
complete -c esctl -n '__esctl_is queue reset' -l to -x -a 'start end' -d 'Replay from: start, end or a position'
complete -c esctl -n '__esctl_is queue retry' -l dry-run -d 'Print how many parked events would go back, change nothing'
complete -c esctl -n '__esctl_is queue reset' -l dry-run -d 'Print the events it would skip and deliver again, change nothing'
complete -c esctl -n '__esctl_is queue reset' -l force -d 'Reset even if unacked events are skipped'
complete -c esctl -n '__esctl_is queue delete' -l dry-run -d 'Print how many unacked events it would drop, change nothing'
complete -c esctl -n '__esctl_is queue delete' -l force -d 'Delete even if the queue has unacked events'

# rebuild
complete -c esctl -n '__esctl_is rebuild' -l projection -r -F -d 'The projection file'
complete -c esctl -n '__esctl_is rebuild' -l queue -x -a '(__esctl_queues)' -d 'Apply what this queue matches and move its cursor'
complete -c esctl -n '__esctl_is rebuild' -l dry-run -d 'Print what the hand-over would settle, write nothing'
complete -c esctl -n '__esctl_nargs 1 rebuild' -F -d 'query db'

# verify
complete -c esctl -n '__esctl_is verify' -l stream -x -a '(__esctl_streams)' -d 'Check only this stream'
complete -c esctl -n '__esctl_is verify' -l queue -x -a '(__esctl_queues)' -d 'Check only this queue; with --log, that the log holds all it acked'
complete -c esctl -n '__esctl_is verify' -l full -d 'Run SQLite integrity_check instead of quick_check'
complete -c esctl -n '__esctl_is verify' -l log -r -F -d 'Check a delivery log instead of the store'
complete -c esctl -n '__esctl_is verify' -l no-gaps -d 'With --log, a skipped version is a violation'
