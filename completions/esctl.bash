# bash completion for esctl                                  -*- shell-script -*-
# Commands and options are listed here (keep them in step with `esctl CMD --help`);
# queue and stream names come from the binary: `esctl __complete queues|streams [PREFIX]`.
# Works with and without the bash-completion package.

_esctl_global_opts='--store --json -q --quiet --color --busy-timeout --version -h --help'
_esctl_commands='init append import export read tail show streams stats queue rebuild verify check help'
_esctl_queue_commands='create ls status pull ack nack drain parked retry reset delete'

# Options that take a value in the next word (or after `=`), for every command.
_esctl_value_opts=' --store --color --busy-timeout --meta --id --expect --batch --category
 --from --type --count -n --prefix --stream --max-attempts --ack-timeout --on-poison --max
 --lease --delay --reason --exec --pipe --projection --into --parallel --max-events --to --queue
 --log --since --until --format --max-lag --max-age --max-parked --max-retrying '

# _esctl_opts CMD [SUB]: the options of one command, without the global ones.
_esctl_opts()
{
    case $1${2:+ $2} in
        append) echo --meta --id --expect --ndjson ;;
        import) echo --batch --ignore-versions ;;
        export) echo --all --category --from --since --until ;;
        read) echo --all --category --type --from --count --backwards --since --until --format ;;
        tail) echo --all --category --type -n --count -f --follow --since --until --format ;;
        check) echo --queue --max-lag --max-age --max-parked --max-retrying ;;
        streams) echo --category --prefix ;;
        rebuild) echo --projection --queue --dry-run ;;
        verify) echo --stream --queue --full --log --no-gaps ;;
        'queue create')
            echo --from --stream --category --type --max-attempts --ack-timeout --on-poison
            ;;
        'queue pull') echo --max --lease --format ;;
        'queue nack') echo --delay --reason ;;
        'queue drain')
            echo --exec --pipe --projection --into --batch --parallel --follow --max-events
            ;;
        'queue retry') echo --all --dry-run ;;
        'queue reset') echo --to --dry-run --force ;;
        'queue delete') echo --dry-run --force ;;
    esac
}

# _esctl_names KIND [PREFIX]: queue or stream names, one per line, read from the store
# that the command line names (`--store`), else the binary's own default.
_esctl_names()
{
    local -a store_opt=()
    [[ -n $store ]] && store_opt=(--store "$store")
    "${words[0]}" "${store_opt[@]}" __complete "$@" 2>/dev/null
}

# _esctl_add_names KIND: add the names that start with $cur to COMPREPLY, quoted for
# the shell.
_esctl_add_names()
{
    local name quoted
    while IFS= read -r name; do
        [[ -n $name && $name == "$cur"* ]] || continue
        printf -v quoted %q "$name"
        COMPREPLY+=("$quoted")
    done < <(if [[ $1 == streams ]]; then _esctl_names streams ${cur:+"$cur"}; else _esctl_names "$1"; fi)
    declare -F __ltrim_colon_completions >/dev/null && __ltrim_colon_completions "$cur"
}

# _esctl_add_categories: categories (stream name up to the first `-`) that start with $cur.
_esctl_add_categories()
{
    [[ $cur == *-* ]] && return
    local name
    local -A seen=()
    while IFS= read -r name; do
        name=${name%%-*}
        [[ -n $name && $name == "$cur"* && -z ${seen[$name]-} ]] || continue
        seen[$name]=1
        COMPREPLY+=("$(printf %q "$name")")
    done < <(_esctl_names streams ${cur:+"$cur"})
}

# _esctl_line_words: sets `line_words` to the words before the one being completed as the
# user typed them. Bash splits COMP_WORDS at the COMP_WORDBREAKS characters too (`:`, `=`,
# `@`...), so that a store URI such as postgresql://u@/db?host=/run arrives in 9 pieces; the
# pieces with no blank between them in COMP_LINE are joined again here.
_esctl_line_words()
{
    local i w rest gap pos=0
    line_words=()
    for ((i = 0; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        rest=${COMP_LINE:pos}
        gap=${rest%%"$w"*}
        if ((i > 0)) && [[ -z $gap ]]; then
            line_words[${#line_words[@]} - 1]+=$w
        else
            line_words+=("$w")
        fi
        ((pos += ${#gap} + ${#w}))
    done
}

_esctl_files()
{
    if declare -F _filedir >/dev/null; then
        _filedir
    else
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
}

_esctl()
{
    # shellcheck disable=SC2034 # split is set by _init_completion -s
    local cur prev words cword split=false
    if declare -F _init_completion >/dev/null; then
        _init_completion -s -n : || return
    else
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${words[cword]}
        prev=${words[cword - 1]}
        # Without bash-completion, `--opt=val` arrives as three words.
        if [[ $cur == = ]]; then
            cur=
        elif [[ $prev == = && $cword -ge 2 ]]; then
            prev=${words[cword - 2]}
        fi
    fi

    # Find the command, the queue subcommand, the positional arguments and --store, in the
    # words as typed (a URI or an `--opt=value` is one word there).
    local i w cmd='' sub='' store=''
    local -a args=() line_words=()
    _esctl_line_words
    local n=${#line_words[@]}
    for ((i = 1; i < n; i++)); do
        w=${line_words[i]}
        case $w in
            --store=*) store=${w#--store=} ;;
            --*=*) ;;
            -*)
                if [[ $_esctl_value_opts == *" $w "* ]]; then
                    ((i++))
                    ((i < n)) && [[ $w == --store ]] && store=${line_words[i]}
                fi
                ;;
            *)
                if [[ -z $cmd ]]; then
                    cmd=$w
                elif [[ $cmd == queue && -z $sub ]]; then
                    sub=$w
                else
                    args+=("$w")
                fi
                ;;
        esac
    done
    # Undo the shell quoting and the tilde of a typed store path.
    [[ $store == \'*\' || $store == \"*\" ]] && store=${store:1:${#store}-2}
    [[ $store == \~/* ]] && store=$HOME/${store#\~/}

    # The value of an option.
    case $prev in
        --store | --projection | --into | --log)
            _esctl_files
            return
            ;;
        --ndjson)
            if [[ $cur != -?* ]]; then
                _esctl_files
                [[ -z $cur || $cur == - ]] && COMPREPLY+=(-)
                return
            fi
            ;;
        --color)
            mapfile -t COMPREPLY < <(compgen -W 'auto always never' -- "$cur")
            return
            ;;
        --expect)
            mapfile -t COMPREPLY < <(compgen -W 'any none exists' -- "$cur")
            return
            ;;
        --on-poison)
            mapfile -t COMPREPLY < <(compgen -W 'park block' -- "$cur")
            return
            ;;
        --from)
            [[ $cmd == queue && $sub == create ]] &&
                mapfile -t COMPREPLY < <(compgen -W 'start end' -- "$cur")
            return
            ;;
        --to)
            mapfile -t COMPREPLY < <(compgen -W 'start end' -- "$cur")
            return
            ;;
        --stream)
            _esctl_add_names streams
            return
            ;;
        --queue)
            _esctl_add_names queues
            return
            ;;
        --category)
            _esctl_add_categories
            return
            ;;
        --exec | --pipe)
            mapfile -t COMPREPLY < <(compgen -c -- "$cur")
            return
            ;;
        --busy-timeout | --ack-timeout | --lease | --delay | --meta | --id | --batch | \
            --type | --count | -n | --prefix | --max-attempts | --max | --reason | \
            --parallel | --max-events | --since | --until | --format | --max-lag | --max-age | \
            --max-parked | --max-retrying)
            return
            ;;
    esac

    if [[ $cur == -* ]]; then
        local opts=$_esctl_global_opts
        [[ -n $cmd ]] && opts+=" $(_esctl_opts "$cmd" "$sub")"
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
        return
    fi

    case $cmd in
        '')
            mapfile -t COMPREPLY < <(compgen -W "$_esctl_commands" -- "$cur")
            ;;
        help)
            if ((${#args[@]} == 0)); then
                mapfile -t COMPREPLY < <(compgen -W "$_esctl_commands" -- "$cur")
            elif ((${#args[@]} == 1)) && [[ ${args[0]} == queue ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$_esctl_queue_commands" -- "$cur")
            fi
            ;;
        queue)
            if [[ -z $sub ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$_esctl_queue_commands" -- "$cur")
            elif [[ $sub != create && $sub != ls ]] && ((${#args[@]} == 0)); then
                _esctl_add_names queues
            fi
            ;;
        append)
            if ((${#args[@]} == 0)); then
                _esctl_add_names streams
            elif ((${#args[@]} == 2)) && [[ $cur == @* ]]; then
                # DATA may be @FILE.
                local file
                while IFS= read -r file; do
                    if [[ -d $file ]]; then
                        file+=/
                        compopt -o nospace 2>/dev/null
                    fi
                    COMPREPLY+=("@$file")
                done < <(compgen -f -- "${cur#@}")
            fi
            ;;
        read | tail | export)
            ((${#args[@]} == 0)) && _esctl_add_names streams
            ;;
        import | rebuild)
            ((${#args[@]} == 0)) && _esctl_files
            ;;
    esac
} &&
    complete -F _esctl esctl

# ex: filetype=sh
