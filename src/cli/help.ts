/**
 * The text of `--help`, laid out as a manual page.
 *
 * @module
 */

/** What `--help` prints (on stdout). */
export const HELP = `NAME
    sessionkit - list, inspect, copy, back up and restore the sessions of grammY bots

SYNOPSIS
    deno run -A --unstable-kv jsr:@sessionkit/grammy/cli COMMAND [ARGUMENTS] [OPTIONS]

    sessionkit list    STORAGE           [--prefix P] [--table T]
    sessionkit count   STORAGE           [--prefix P] [--table T]
    sessionkit get     STORAGE KEY       [--table T]
    sessionkit delete  STORAGE KEY       [--table T] [--dry-run]
    sessionkit copy    FROM TO           [--prefix P] [--table T] [--dry-run]
                                         [--overwrite | --skip-existing] [--batch-size N]
    sessionkit export  FROM FILE         [--prefix P] [--table T] [--overwrite] [--batch-size N]
    sessionkit import  FILE TO           [--prefix P] [--table T] [--dry-run]
                                         [--overwrite | --skip-existing] [--batch-size N]
    sessionkit --help

    (sessionkit stands for the deno run command above; --unstable-kv is needed
    for kv: storages only.)

DESCRIPTION
    Works on the storages of @sessionkit/grammy, each named by a URL. Data
    (keys, sessions, exports to -) goes to standard output; messages,
    progress and errors go to standard error. An error is one line and a
    non-zero exit status (see EXIT STATUS), never a stack trace.

COMMANDS
    list STORAGE
        Prints the key of every session, one per line, in the storage's
        listing order.

    count STORAGE
        Prints the number of sessions.

    get STORAGE KEY
        Prints the session stored under KEY as JSON. Exit status 5 if there
        is none. The session is read as a bot reads it: with ?ttl= in the
        URL its expiry is renewed; without one, a storage clears the expiry
        it reads (so give the TTL your bot uses, if it uses one).

    delete STORAGE KEY
        Deletes the session stored under KEY. Exit status 5 if there is none.

    copy FROM TO
        Copies every session of FROM into TO, a batch at a time, keys and
        values unchanged. FROM is only read. If TO already holds sessions
        (with --prefix: sessions under that prefix), copy refuses (exit
        status 4) unless told what to do with them: --skip-existing keeps
        them and copies the rest, --overwrite replaces them. TO (its file
        or table) is created if needed. A session of FROM that cannot be
        read (a value that is not JSON, another program's key) is reported
        with its key and counted as failed (exit status 1); the others are
        copied.

        copy refuses (exit status 2) a TO that is FROM however it is
        spelt (sqlite:a.db and sqlite:./a.db or a link to it; localhost,
        127.0.0.1 and ::1; a default port, database, table or prefix
        written out), and two namespaces of one Redis server where one
        key prefix starts with the other (?prefix=bot: and
        ?prefix=bot:v2:): FROM's listing would take in what the copy
        writes. Give TO a prefix that neither starts with FROM's nor is the
        start of it, or another database (redis://HOST:PORT/1). Host names
        that only resolve to the same server are not recognised.

    export FROM FILE
        Writes every session of FROM to FILE as JSON Lines, one
        {"key": ..., "value": ...} object per line; FILE - is standard
        output. The file appears only when the export is complete (it is
        written under another name and then renamed). An existing FILE is
        refused (exit status 4) unless --overwrite.

    import FILE TO
        Reads JSON Lines as export writes them (FILE - is standard input)
        into TO, with the same rules as copy for a TO that holds sessions.
        A line that is no session is reported with its number and counted
        as failed (exit status 1); the others are imported. So is a line
        with an integer that a JavaScript number cannot keep as written (a
        64-bit id beyond 2^53): write such a number as a string. A key on
        several lines: without --overwrite the first line is imported and
        the others are skipped; with --overwrite the last line wins.

STORAGES
    redis://[USER:PASSWORD@]HOST[:PORT][/DB]   also rediss:// (TLS)
    postgres://USER[:PASSWORD]@HOST[:PORT]/DB  also postgresql://
    mysql://USER[:PASSWORD]@HOST[:PORT]/DB     also mariadb://
    sqlite:PATH                                a SQLite file
    kv:PATH                                    a Deno KV file (or a KV Connect https:// URL)
    kv:                                        Deno's default KV database

    The storage's own options go in the URL's query, under the names of
    the storage classes' options:

    ?prefix=P    Redis: the key prefix of the sessions (default session:).
                 Deno KV: the KV key prefix, comma-separated parts (default
                 sessions).
    ?table=T     SQL: the session table (default sessions; --table sets it
                 for every SQL storage whose URL has none).
    ?schema=S    PostgreSQL: the schema of the table.
    ?ttl=MS      Any storage: the time to live of what it writes (and
                 renews), in milliseconds, as the bot's storage has it.
                 Without it, copied sessions do not expire.

    Other query parameters are left for the driver (?sslmode=require,
    ?connectionLimit=4). A password in a URL is shown as *** in messages.

    Connecting to a server is bounded: a server that cannot be reached, or
    accepts the connection and never answers, is exit status 3 once the
    storage's timeout (10 seconds) has passed, and a few seconds more to
    close what was opened (about 15 seconds in all).

    A storage that is read (list, count, get, delete, the FROM of copy and
    export) must exist: a missing file or table is an error (exit status
    3), never created. The TO of copy and import is created as needed;
    with --dry-run, nothing is created.

OPTIONS
    --prefix P       Only sessions whose key starts with P (the keys are
                     copied unchanged). Not to be confused with ?prefix=,
                     the storage's own namespace.
    --table T        The table of SQL storages whose URL names none.
    --dry-run        Says what would be done and changes nothing: copy and
                     import count what would be written and skipped, delete
                     checks that the key exists.
    --overwrite      copy, import: replace the sessions TO holds. export:
                     replace FILE.
    --skip-existing  copy, import: keep the sessions TO holds and write the
                     rest (also how an interrupted run is resumed).
    --batch-size N   Sessions in flight at once (default 100).
    --no-progress    No progress display.
    -h, --help       This text.

    Options may come anywhere after the command; -- ends them (for a key
    that starts with -).

PROGRESS
    copy, export and import show their progress on standard error: on a
    terminal, one line with a bar, the count, the rate and the time left;
    otherwise a plain line once the total is known, then every 2 seconds.
    The total comes from counting the keys of FROM alongside (a keys-only
    listing that takes turns with the command, so it never holds it or
    Ctrl-C up; import: the bytes of FILE); until it is known, the count
    and the rate are shown.

INTERRUPTING
    Ctrl-C during copy, export or import stops after the batch in flight,
    prints how far it got and how to resume, and exits with status 130.
    Nothing is left half-written. Resume a copy or import by running it
    again with --skip-existing: what was written is skipped. An interrupted
    export leaves no file (an existing FILE is kept as it was). A second
    Ctrl-C quits at once. If the reader of export - goes away (| head),
    export says how far it got and exits with status 0.

EXIT STATUS
    0    Done.
    1    The command ran, but some sessions failed (they are listed), or
         the storage failed in the middle.
    2    Usage error: unknown command or option, a missing argument,
         something that is no storage URL, or a copy from a storage into
         itself or between overlapping Redis key prefixes.
    3    A storage or file cannot be opened: unreachable server, refused
         login, no such file, table or database.
    4    Refused: TO already holds sessions (pass --skip-existing or
         --overwrite), or the export FILE exists (pass --overwrite).
    5    get, delete: no session under KEY.
    130  Interrupted by Ctrl-C.

EXAMPLES
    List the sessions of a bot on Redis, with the key prefix it uses:
        sessionkit list 'redis://127.0.0.1:6379?prefix=mybot:'

    Move from SQLite to PostgreSQL, checking first:
        sessionkit copy sqlite:sessions.db postgres://bot@db.internal/bot --dry-run
        sessionkit copy sqlite:sessions.db postgres://bot@db.internal/bot

    Resume it after Ctrl-C:
        sessionkit copy sqlite:sessions.db postgres://bot@db.internal/bot --skip-existing

    Back up Deno KV and restore it into another table:
        sessionkit export kv:sessions.kv backup.jsonl
        sessionkit import backup.jsonl sqlite:restored.db --table bot_sessions

    Show one session:
        sessionkit get 'postgres://postgres@127.0.0.1/test?table=bot_sessions' 123456789
`;
