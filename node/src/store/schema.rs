//! The SQLite schema and its migrations, stepped by `PRAGMA user_version`.
//!
//! Design notes:
//! - `changes` is the append-only change log. Its `seq` is this node's monotonic
//!   sequence (rows are never deleted, so SQLite's max+1 rowid is monotonic); the sync
//!   uplink streams it upward from the cursor the parent acknowledged. A change holds
//!   the record body (canonical JSON) once; `records` points at it instead of copying
//!   it, because storing 1 KiB bodies twice halves ingest speed.
//! - `records` is the current state of each `reg_no`, with the columns queries filter on.
//!   A reg_no begins with its region code, so the reg_no key also serves region
//!   prefixes; a separate region index would cost every insert a fourth B-tree.
//! - `files` is the journal of ingested files, keyed by SHA-256: a re-drop of the same
//!   bytes stores nothing, and the destination chosen before the commit lets a restart
//!   finish a move that a crash interrupted.

/// Each entry moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the single-node store.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE changes (
        seq         INTEGER PRIMARY KEY,
        reg_no      TEXT    NOT NULL,
        origin      TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        op          INTEGER NOT NULL,  -- 0 upsert, 1 withdraw
        region      TEXT    NOT NULL,
        hash        BLOB    NOT NULL,
        accepted_at INTEGER NOT NULL,  -- ms since the Unix epoch, this node's clock
        hops        TEXT    NOT NULL,  -- JSON [[node, ms], ...]: origin first, this node last
        source      TEXT    NOT NULL,  -- 'file:<sha256>' or 'child:<node id>'
        body        TEXT               -- canonical record JSON; NULL for a withdrawal
    );
    CREATE TABLE records (
        reg_no        TEXT PRIMARY KEY,
        origin        TEXT    NOT NULL,
        version       INTEGER NOT NULL,
        withdrawn     INTEGER NOT NULL,
        hash          BLOB    NOT NULL,
        seq           INTEGER NOT NULL,  -- the latest change
        body_seq      INTEGER NOT NULL,  -- the change holding the latest body
        region        TEXT    NOT NULL,
        kind          TEXT    NOT NULL,
        reg_date      TEXT    NOT NULL,  -- YYYY-MM-DD
        secret        TEXT    NOT NULL,
        embargo_until TEXT,
        updated_at    INTEGER NOT NULL
    );
    CREATE TABLE files (
        sha256      TEXT PRIMARY KEY,
        name        TEXT    NOT NULL,
        source_path TEXT    NOT NULL,
        dest        TEXT    NOT NULL,
        received_at INTEGER NOT NULL,
        report      TEXT    NOT NULL,
        moved       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX files_pending ON files(moved) WHERE moved = 0;",
    // 2: federation. The parent's durable cursor per child (advanced in the same
    // transaction as the batch it acknowledges), conflicts held aside, and what the
    // uplink last saw, for `huijiao status`.
    "CREATE TABLE children (
        child         TEXT PRIMARY KEY,
        cursor        INTEGER NOT NULL,  -- highest child log seq durably applied
        batches       INTEGER NOT NULL DEFAULT 0,
        changes       INTEGER NOT NULL DEFAULT 0,
        last_batch_at INTEGER,
        last_seen_at  INTEGER,
        last_error    TEXT
    );
    CREATE TABLE quarantine (
        id          INTEGER PRIMARY KEY,
        reg_no      TEXT    NOT NULL,
        origin      TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        op          INTEGER NOT NULL,
        region      TEXT    NOT NULL,
        hash        BLOB    NOT NULL,
        hops        TEXT    NOT NULL,
        body        TEXT,
        from_child  TEXT    NOT NULL,
        received_at INTEGER NOT NULL,
        held_origin TEXT,              -- the origin of the record this node keeps
        reason      TEXT    NOT NULL,
        UNIQUE (reg_no, origin, version)
    );
    CREATE TABLE uplink (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        parent       TEXT    NOT NULL,
        state        TEXT    NOT NULL,  -- connecting / streaming / refused / error
        acked        INTEGER NOT NULL,
        last_error   TEXT,
        connected_at INTEGER,
        updated_at   INTEGER NOT NULL
    );",
    // 3: files the inbox started on and did not finish, by path: a file the node
    // keeps dying on is set aside instead of being read forever.
    "CREATE TABLE attempts (
        path    TEXT PRIMARY KEY,
        count   INTEGER NOT NULL,
        last_at INTEGER NOT NULL
    );",
    // 4: log identity and truthful status. A parent keeps one cursor per child and
    // change log (a store restored from an old copy starts a new log); refused peers
    // are counted by the identity they showed; changes the parent refused are held
    // aside by the child, which goes on with the rest.
    "CREATE TABLE cursors (
        child     TEXT    NOT NULL,
        log_id    TEXT    NOT NULL,  -- '' for a version-1 child
        cursor    INTEGER NOT NULL,
        check_seq INTEGER NOT NULL DEFAULT 0,  -- the last change received from this log
        check_fp  BLOB,                        -- and its fingerprint (wire::fingerprint)
        PRIMARY KEY (child, log_id)
    );
    INSERT INTO cursors (child, log_id, cursor) SELECT child, '', cursor FROM children;
    ALTER TABLE children ADD COLUMN connected INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE children ADD COLUMN log_id TEXT;
    ALTER TABLE children ADD COLUMN rewound_at INTEGER;
    ALTER TABLE children ADD COLUMN last_error_at INTEGER;
    CREATE TABLE refusals (
        identity     TEXT    NOT NULL,  -- the node id a certificate names, or what was seen of it
        reason       TEXT    NOT NULL,
        count        INTEGER NOT NULL,
        first_at     INTEGER NOT NULL,
        last_at      INTEGER NOT NULL,
        last_message TEXT,
        PRIMARY KEY (identity, reason)
    );
    CREATE TABLE stuck (
        seq    INTEGER PRIMARY KEY,  -- this node's change the parent refused
        reg_no TEXT    NOT NULL,
        reason TEXT    NOT NULL,
        at     INTEGER NOT NULL
    );
    ALTER TABLE uplink ADD COLUMN last_error_at INTEGER;",
    // 5: the health of each child's subtree, as it last reported it (JSON list of
    // wire::NodeHealth), for the subtree view of status, /admin and metrics.
    "ALTER TABLE children ADD COLUMN health TEXT;
    ALTER TABLE children ADD COLUMN health_at INTEGER;",
    // 6: conflicts told by the parent (held aside here or above) that concern a
    // record of this node's subtree: the origin learns where its record met another.
    "CREATE TABLE conflict_notes (
        reg_no      TEXT    NOT NULL,
        origin      TEXT    NOT NULL,  -- whose change was held aside
        version     INTEGER NOT NULL,
        kept_origin TEXT    NOT NULL,  -- the origin of the record kept where they met
        met_at      TEXT    NOT NULL,  -- the node where they met
        at          INTEGER NOT NULL,  -- when it held it aside (its clock)
        reason      TEXT    NOT NULL,
        noted_at    INTEGER NOT NULL,  -- when this node learned of it
        PRIMARY KEY (reg_no, origin, version, met_at)
    );",
    // 7: hop times a child sent that were not believable (before the hop below, or
    // too far in the future) and were replaced by this node's receipt time.
    // A child held back by its volume bound, since when and why (cleared when its
    // changes flow again).
    // The uplink keeps when it started failing (reset when it streams again), so a
    // node that cannot reach its parent never looks healthy.
    "ALTER TABLE children ADD COLUMN clock_corrections INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE children ADD COLUMN clock_corrected_at INTEGER;
    ALTER TABLE uplink ADD COLUMN failing_since INTEGER;
    ALTER TABLE children ADD COLUMN held_back_at INTEGER;
    ALTER TABLE children ADD COLUMN held_back_reason TEXT;",
    // 8: online registration (spec v1.2 §6). Units the office created, their
    // submissions with the unit's object as sent, the evidence (bytes kept here, so
    // backups and restores carry them; never in the change log, never sent upward),
    // every decision, and the next 登记号 serial per (node, year, kind).
    "CREATE TABLE units (
        uscc        TEXT PRIMARY KEY,
        name        TEXT    NOT NULL,
        hash        TEXT    NOT NULL,  -- Argon2id, PHC string
        must_change INTEGER NOT NULL,  -- 1 until the one-time password is changed
        disabled    INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE submissions (
        id           TEXT PRIMARY KEY,
        uscc         TEXT    NOT NULL,
        member       TEXT,              -- the member who filled it in (none: the unit)
        state        TEXT    NOT NULL,  -- draft / unit_review / submitted / registered / returned / withdrawn
        asked        TEXT    NOT NULL,  -- new / change / withdraw
        reg_no       TEXT,              -- named (change, withdraw) or assigned (new, on approval)
        body         TEXT    NOT NULL,  -- the unit's object (spec §3 keys)
        reason       TEXT,              -- why it was returned, last time
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        submitted_at INTEGER
    );
    CREATE INDEX submissions_by_state ON submissions(state, submitted_at);
    CREATE INDEX submissions_by_unit ON submissions(uscc, created_at);
    CREATE TABLE attachments (
        submission TEXT    NOT NULL,
        n          INTEGER NOT NULL,
        type       TEXT    NOT NULL,
        name       TEXT    NOT NULL,
        format     TEXT    NOT NULL,  -- pdf / ofd / jpeg / png, judged by the bytes
        size       INTEGER NOT NULL,
        sha256     TEXT    NOT NULL,
        PRIMARY KEY (submission, n)
    );
    CREATE TABLE attachment_bytes (
        sha256 TEXT PRIMARY KEY,
        bytes  BLOB NOT NULL
    );
    CREATE TABLE decisions (
        id         INTEGER PRIMARY KEY,
        submission TEXT    NOT NULL,
        at         INTEGER NOT NULL,
        who        TEXT    NOT NULL,
        action     TEXT    NOT NULL,  -- submit / approve / return
        reason     TEXT,
        reg_no     TEXT,
        version    INTEGER
    );
    CREATE INDEX decisions_by_submission ON decisions(submission, id);
    CREATE TABLE serials (
        prefix TEXT PRIMARY KEY,      -- node code, year, kind letter
        next   INTEGER NOT NULL
    );",
    // 9: 科技成果包. A package's definition as operators keep editing it; each
    // publication freezes a version: what the definition was and the registration
    // numbers it held, in their order (never changed afterwards).
    "CREATE TABLE packages (
        slug        TEXT PRIMARY KEY,
        title       TEXT    NOT NULL,
        field       TEXT,              -- one of the eight priority fields, or none
        description TEXT    NOT NULL,
        selection   TEXT    NOT NULL,  -- JSON {query, include, exclude}
        retired_at  INTEGER,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE package_versions (
        slug         TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        published_at INTEGER NOT NULL,
        title        TEXT    NOT NULL,
        field        TEXT,
        description  TEXT    NOT NULL,
        selection    TEXT    NOT NULL,
        count        INTEGER NOT NULL,
        PRIMARY KEY (slug, version)
    );
    CREATE INDEX package_versions_by_time ON package_versions(published_at);
    CREATE TABLE package_members (
        slug    TEXT    NOT NULL,
        version INTEGER NOT NULL,
        pos     INTEGER NOT NULL,
        reg_no  TEXT    NOT NULL,
        PRIMARY KEY (slug, version, pos)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX package_members_by_reg_no ON package_members(slug, version, reg_no);",
    // 10: the office's named reviewers: each signs in to the review pages with a
    // password of its own, and every decision records the account.
    "CREATE TABLE reviewers (
        login       TEXT PRIMARY KEY,
        name        TEXT    NOT NULL,
        hash        TEXT    NOT NULL,  -- Argon2id, PHC string
        must_change INTEGER NOT NULL,  -- 1 until the one-time password is changed
        disabled    INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );",
    // 11: a unit's member accounts (填报人, spec §6.1): each signs in with the login its
    // unit gave it; its submissions wait for the unit's check (`unit_review`).
    // `submissions.member` (from 8) names the member who filled one in.
    "CREATE TABLE members (
        login       TEXT PRIMARY KEY,  -- lower case, unique on the node
        uscc        TEXT    NOT NULL,  -- its unit
        name        TEXT    NOT NULL,
        hash        TEXT    NOT NULL,  -- Argon2id, PHC string
        must_change INTEGER NOT NULL,  -- 1 until the one-time password is changed
        disabled    INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX members_by_unit ON members(uscc, created_at);",
    // 12: a big file committed in parts (spec v1.2 §2): how far each file in progress
    // got (the last data row whose part is committed), where it will go, what the
    // store counted so far, and the rows the store refused in committed parts, so a
    // restart resumes after the last part with the same report. The entry becomes the
    // file's `files` row with its last part.
    "CREATE TABLE file_progress (
        sha256      TEXT PRIMARY KEY,
        name        TEXT    NOT NULL,
        source_path TEXT    NOT NULL,
        dest        TEXT    NOT NULL,
        received_at INTEGER NOT NULL,
        rows_done   INTEGER NOT NULL,  -- the file row of the last row committed
        parts       INTEGER NOT NULL,
        inserted    INTEGER NOT NULL,
        updated     INTEGER NOT NULL,
        withdrawn   INTEGER NOT NULL,
        unchanged   INTEGER NOT NULL
    );
    CREATE TABLE file_progress_refused (
        sha256 TEXT    NOT NULL,
        row    INTEGER NOT NULL,
        error  TEXT    NOT NULL,       -- the row's error as JSON (spec §5)
        PRIMARY KEY (sha256, row, error)
    ) WITHOUT ROWID;",
];
