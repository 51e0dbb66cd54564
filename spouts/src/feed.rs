//! `feed`: new submissions or comments of subreddits, polled from a Reddit-compatible listing
//! API (`{base}/r/{subreddit}/new.json`, `{base}/r/{subreddit}/comments.json`), as PRAW's
//! `subreddit.stream.submissions()` / `.comments()` yield them: each item once, oldest first,
//! across polls and restarts.
//!
//! ```text
//!                  ┌──── OAuth token (client credentials; refreshed before expiry and on 401)
//!                  ▼
//!  poll task: GET {base}/r/{sub}/new.json?limit=..&before=<newest fetched>  (or after=.. pages)
//!      │ Listing { children: [t3 | t1, ...] }      429/5xx/network: backoff, counted, warned
//!      │ X-Ratelimit-Remaining/Reset: wait         bad JSON / shape, 4xx: `error` stream
//!      ▼
//!  spout task: drop items already seen (persisted set) or in flight; order oldest first
//!      │                                                  bad child: `error` stream (reason, raw)
//!      ▼
//!  spout ──emit (id, fullname, ...) msg id n──► bolts     pending: n ─► item (replayed on fail)
//!      ▲                                                    │ ack
//!      └──── seen set (LRU, max_seen) ◄─────────────────────┘ ─► state file (atomic rename)
//!                 with checkpoints: seen set ─► checkpoint ─► state file when it completes
//! ```
//!
//! # Options
//! ```toml
//! [spouts.news]
//! kind = "feed"
//! subreddits = ["worldnews", "news+politics"]   # "a+b" is one multireddit source
//! listing = "submissions"          # or "comments"
//! # base = "https://www.reddit.com"  (with `oauth`: "https://oauth.reddit.com")
//! limit = 100                      # items per request, 1..=100
//! poll_interval = "5s"             # after a poll that brought something new
//! max_poll_interval = "16s"        # polls that bring nothing double the wait up to this
//! max_backoff = "2m"               # errors (5xx, network, 429 without a hint) double up to this
//! max_pages = 10                   # requests per poll when a burst fills whole pages
//! timeout = "30s"                  # per HTTP request
//! user_agent = "linux:my-app:v1.0 (by /u/me)"   # Reddit requires a descriptive one
//! # oauth = { client_id = "..", client_secret = "..", token_url = "https://www.reddit.com/api/v1/access_token" }
//! # state_dir = "state/news"       # default: $TOPO_STATE_DIR or .topo/state, then /<topology>/<component>
//! max_seen = 10000                 # fullnames remembered per subreddit (least recently seen dropped)
//! skip_existing = false            # true: a first run emits only items newer than its first poll
//! max_items = 0                    # end after this many new items, emitted or sent to `error`; 0 = never
//! ```
//!
//! # Output
//! The `default` stream carries [`FIELDS`]: `id` (`"1abcde"`), `fullname` (`"t3_1abcde"`),
//! `kind` (`"t3"` submission or `"t1"` comment), `subreddit`, `title`, `author`,
//! `created_utc` (integer epoch seconds), `score`, `num_comments`, `url`, `permalink` (a path
//! such as `/r/worldnews/comments/1abcde/title/`), `body` (a submission's `selftext`, `""` for
//! link posts; a comment's `body`). Requests carry `raw_json=1`, so text comes without Reddit's
//! HTML escaping (`&` rather than `&amp;`).
//!
//! Listings of different years and hosts carry different field sets (comments of 2016–2017,
//! for one, have no `permalink`), so only what identifies an item is required:
//! - `id` and `fullname`: from `id` and `name`; either one is derived from the other when
//!   missing (`name` = `{kind}_{id}`). A child with neither, with a `name` that is not a
//!   fullname of its kind, or with an `id` that does not match its `name`, goes to `error`.
//! - `created_utc`: required (a number); without it the child goes to `error`.
//! - `permalink`: as Reddit gives it; when missing, derived. A comment's is
//!   `/r/{subreddit}/comments/{link}/{slug}/{id}/` (Reddit's own shape) from `subreddit`,
//!   `link_id` (`t3_{link}`) and `id`, the slug being the submission's when `link_permalink` or
//!   `link_url` is a reddit.com page of that submission (as for a self post), else `_` (Reddit
//!   ignores the slug, so the link works). A submission's is `/r/{subreddit}/comments/{id}/_/`.
//!   Null when `subreddit` (or, for a comment, `link_id`) is missing too.
//! - Every other field is null when missing (or not of its type): `subreddit`, `author`,
//!   `title`, `score`, `num_comments`, `url`, `body`. A comment has no `title`, `num_comments`
//!   or `url`: they are always null (its `link_title` and the submission's `num_comments` are
//!   not mapped).
//!
//! The `error` stream carries (`reason`, `raw`), without message id: a response that is not
//! JSON or not a Listing, a 4xx answer other than 401/429 (a private or banned subreddit), and a
//! listing child of an unknown kind or lacking what identifies an item (above); the reason names
//! the child and the missing or wrong field. `raw` is the first KiB of the body or of the
//! child's JSON. A bad child is reported once: its fullname (when it has one) joins the seen
//! set, and one without a fullname is remembered in memory by a hash of its JSON. Every case is
//! counted ([`FeedCounters`]) and logged with `tracing::warn!` at most once a second.
//!
//! `max_items` counts the new listing children the spout handles, oldest first: those emitted
//! on `default` and those sent to `error` alike (a bad child is handled once reported), so a run
//! ends even when its items are bad. Responses sent to `error` are not listing children and do
//! not count. A run ends once `max_items` children were handled and the emitted ones acked; a
//! listing holding fewer new children than that is polled until more come.
//!
//! # Polling and paging
//! Subreddits are polled one request at a time per task. The first poll of a subreddit (or the
//! first after a restart, or after a `before` poll that brought nothing) is a plain newest-first
//! request checked against the seen set: on a first run (no state file yet; the first poll
//! writes one) it emits the current listing (as PRAW's streams yield the last 100 items first)
//! unless `skip_existing = true`; with earlier state, if the whole page is new it follows `after`
//! pages (up to `max_pages`) to catch up on what came while it was stopped. Later polls ask only for items newer than the newest one fetched
//! (`before=<fullname>`); a full page is followed by another `before` request from its newest
//! item (up to `max_pages`), so a burst larger than `limit` is not missed, and a poll cut by
//! `max_pages` is followed at once by the next. Reddit's `before` returns nothing when that item
//! has been deleted, which would hide every newer item; so after a `before` poll that brought
//! nothing, the next poll is a plain one, whose newest item becomes the cursor: a deleted cursor
//! costs one poll interval, and an idle feed costs no extra requests. Items are emitted oldest
//! first per poll. A poll that brings something new is followed after `poll_interval`; one that
//! brings nothing doubles the wait up to `max_poll_interval` (PRAW's backoff).
//!
//! # Rate limits and errors
//! After each response, `X-Ratelimit-Remaining` below 1 makes every task of the spout wait
//! `X-Ratelimit-Reset` seconds before its next request. A 429 waits `Retry-After` (seconds) or
//! else `X-Ratelimit-Reset`, or else the error backoff, and is counted. A 5xx, a network error or
//! a failed token request waits the error backoff (from `poll_interval`, doubling up to
//! `max_backoff`; reset by a good response) and is counted and warned. With `oauth`, a token is
//! fetched with the client credentials grant (HTTP basic auth, `grant_type=client_credentials`),
//! shared by the spout's tasks, refreshed when 90% of its life (at most a minute before expiry)
//! has passed, and refreshed once at once when a request gets 401. A failed poll is dropped whole
//! (nothing of it is emitted nor marked seen) and made again.
//!
//! # Delivery guarantee
//! Each emitted item is kept in memory until acked and emitted again (same message id) when it
//! fails or times out. Its fullname joins the seen set only once acked, and the set is written to
//! `<state_dir>/<listing>-<subreddit>.seen` (one fullname a line, least recently seen first; at
//! most once a second, at the end of `max_items`, and when the spout closes). So after a restart
//! (same state directory) items acked before are not emitted again, and items not acked are
//! fetched and emitted again — **at-least-once within the listing's reach**: Reddit lists at
//! most about 1000 items per listing, so items that were emitted but not acked, or that appeared
//! while the spout was stopped, are lost if more than that many newer ones came in the meantime
//! (the catch-up also stops at `max_pages` × `limit`). Acks of the last second before a crash
//! are not written: those items are emitted again (duplicates, not loss). Two tasks never share
//! a subreddit; each subreddit has its own file.
//!
//! # Checkpoints (exactly-once)
//! The spout rewinds ([`Spout::rewinds`]) within the listing's reach. In a run that takes
//! checkpoints (`guarantee = "exactly_once"`, or a bolt that keeps state) each task writes
//! into every checkpoint, per subreddit it polls (state part `seen`): the seen set (least
//! recently seen first), whether its first poll is still to come, and the bad children without
//! a fullname already reported. Under exactly-once (acking off) the seen set includes every
//! item emitted before the checkpoint, acked or not yet; under at-least-once only acked items.
//! A run restored from a checkpoint takes every old task's sets (so a change of parallelism
//! keeps them) and starts each subreddit with a plain poll: the items the checkpoint does not
//! hold are emitted again, oldest first, and those it holds are not — exactly what follows the
//! checkpoint, as long as those items are still in the listing (the reach limit above). A
//! subreddit the checkpoint does not know starts as a first run. The state files are then
//! written only when a checkpoint completes, with that checkpoint's sets (never from acks, never
//! at close), so a run started `--fresh` resumes from the last completed checkpoint's sets; and
//! with `max_items` the spout ends once a completed checkpoint holds its last state. `max_items`
//! counts per run.
//!
//! The state is a plain file replaced by an atomic rename (written to a temporary file in the
//! same directory, fsynced, renamed over the old one, directory fsynced), not an embedded store:
//! the set is small and bounded (`max_seen` fullnames of ~10 bytes), is always read and written
//! whole, and a file per subreddit needs no lock shared between tasks or with a restarted task
//! whose old instance is still closing; a crash leaves either the old or the new file, and the
//! file can be read, edited or deleted (to start over) by hand.
//!
//! # Known limits
//! - With several tasks, subreddit `i` is polled by task `i mod parallelism`; extra tasks emit
//!   nothing.
//! - `Retry-After` as an HTTP date is not understood (Reddit sends seconds); the error backoff is
//!   used instead.
//! - `max_seen` should exceed the listing's reach (1000 on Reddit): an item forgotten from the
//!   seen set but still in the listing is emitted again by a plain poll.
//! - Two components given the same `state_dir` and subreddit would share one state file: give
//!   each its own directory (the default does).
//! - A new poll starts only once the items of the last one are all emitted: a topology slower
//!   than the feed polls less often (at most one poll's items, `limit` × `max_pages`, wait in
//!   memory besides the `max_spout_pending` emitted ones).
//! - A spout task restarted after an error starts with an empty pending map: the items its
//!   predecessor had emitted but not acked are not replayed from memory, but fetched again by
//!   the new instance's first (plain) poll while they are still in the listing.
//! - A bad child without a fullname is remembered as reported in memory only: a restarted
//!   task reports it again while it is still in the listing (and it counts toward `max_items`
//!   again).
//! - Items edited after being emitted are not emitted again (the fullname is the identity);
//!   scores and comment counts are those of the poll that first fetched the item.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::connector::counters;
use crate::connector::encoding::RAW_PREFIX;
use crate::connector::state::state_dir;
use crate::connector::{ERROR_STREAM, SOURCE_ERROR_FIELDS};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, CheckpointId, Guarantee, OutputDeclarer, Restore, Snapshot, Spout, SpoutCollector,
    TaskContext, Value, Values, values,
};

/// The fields of the `default` stream, in order.
pub const FIELDS: [&str; 12] = [
    "id",
    "fullname",
    "kind",
    "subreddit",
    "title",
    "author",
    "created_utc",
    "score",
    "num_comments",
    "url",
    "permalink",
    "body",
];

/// Reddit's API base, without OAuth.
pub const REDDIT_BASE: &str = "https://www.reddit.com";

/// Reddit's API base for OAuth clients.
pub const REDDIT_OAUTH_BASE: &str = "https://oauth.reddit.com";

/// Reddit's token endpoint.
pub const REDDIT_TOKEN_URL: &str = "https://www.reddit.com/api/v1/access_token";

/// How many tuples `next_tuple` emits at most per call.
const DRAIN_PER_CALL: usize = 64;

/// How often the seen set is written at most while items are being acked.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The first line of a state file.
const STATE_HEADER: &str = "# topo feed seen set: one fullname a line, least recently seen first";

/// Which listing of a subreddit is polled.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FeedListing {
    /// New submissions (t3): `/r/{subreddit}/new.json`.
    #[default]
    Submissions,
    /// New comments (t1): `/r/{subreddit}/comments.json`.
    Comments,
}

impl FeedListing {
    fn path(self) -> &'static str {
        match self {
            FeedListing::Submissions => "new.json",
            FeedListing::Comments => "comments.json",
        }
    }

    fn name(self) -> &'static str {
        match self {
            FeedListing::Submissions => "submissions",
            FeedListing::Comments => "comments",
        }
    }
}

/// OAuth client credentials (Reddit's "application only" grant).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthOptions {
    /// The application's client id (required).
    pub client_id: String,
    /// The application's secret (required).
    pub client_secret: String,
    /// Where tokens are requested.
    #[serde(default = "default_token_url")]
    pub token_url: String,
}

fn default_token_url() -> String {
    REDDIT_TOKEN_URL.to_string()
}

impl fmt::Debug for OAuthOptions {
    /// Shows everything but the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthOptions")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_url", &self.token_url)
            .finish()
    }
}

/// Options of the `feed` spout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = feed_required)]
pub struct FeedOptions {
    /// The API base; unset = Reddit's (`https://oauth.reddit.com` with `oauth`).
    pub base: Option<String>,
    /// The subreddits polled, each a source of its own; `"a+b"` is one multireddit (required).
    pub subreddits: Vec<String>,
    /// Submissions or comments.
    pub listing: FeedListing,
    /// Items per request, 1 to 100.
    pub limit: u32,
    /// The wait after a poll that brought new items.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub poll_interval: Duration,
    /// The longest wait between polls that bring nothing (each doubles the wait).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub max_poll_interval: Duration,
    /// The longest wait after errors (each doubles the wait, from `poll_interval`).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub max_backoff: Duration,
    /// Requests per poll at most when whole pages are new.
    pub max_pages: u32,
    /// Timeout of each HTTP request.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub timeout: Duration,
    /// The User-Agent header.
    pub user_agent: String,
    /// Client credentials; unset = anonymous requests.
    pub oauth: Option<OAuthOptions>,
    /// Where the seen sets are kept; unset = `$TOPO_STATE_DIR` (or `.topo/state`) joined with
    /// the topology's name and the component's id.
    pub state_dir: Option<PathBuf>,
    /// Fullnames remembered per subreddit; the least recently seen are forgotten.
    pub max_seen: usize,
    /// On a first run (no state), mark the current listing seen without emitting it.
    pub skip_existing: bool,
    /// End after this many new listing children over all tasks, counting those emitted and
    /// those sent to `error` (then exhausted once the emitted ones are acked); 0 = never.
    pub max_items: u64,
}

/// The default User-Agent: `topo/<version> (by topo stream processing)`.
pub fn default_user_agent() -> String {
    format!(
        "topo/{} (by topo stream processing)",
        env!("CARGO_PKG_VERSION")
    )
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            base: None,
            subreddits: Vec::new(),
            listing: FeedListing::Submissions,
            limit: 100,
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(16),
            max_backoff: Duration::from_secs(120),
            max_pages: 10,
            timeout: Duration::from_secs(30),
            user_agent: default_user_agent(),
            oauth: None,
            state_dir: None,
            max_seen: 10_000,
            skip_existing: false,
            max_items: 0,
        }
    }
}

counters! {
    /// Counts of what the spout saw, shared by every task of a spout (and its clones).
pub struct FeedCounters {
        /// Listing requests sent (token requests not included).
        requests,
        /// New items accepted for emission (replays and bad children not counted).
        items,
        /// 5xx answers of the listing API.
        server_errors,
        /// Requests that got no answer (connection refused or reset, timeout).
        request_errors,
        /// 429 answers.
        rate_limited,
        /// Waits for `X-Ratelimit-Reset` because `X-Ratelimit-Remaining` was below 1.
        rate_limit_waits,
        /// Responses that were not a JSON Listing, or a 4xx: sent to the `error` stream.
        bad_responses,
        /// Listing children of an unknown kind or lacking what identifies an item (`name`/`id`,
        /// `created_utc`): sent to the `error` stream.
        bad_items,
        /// OAuth token requests made.
        token_requests,
        /// OAuth token requests that failed.
        token_errors,
        /// 401 answers to listing requests (each followed by a token refresh).
        unauthorized,
        /// State files written.
        state_writes,
        /// State files that could not be written (retried at the next write).
        state_write_errors,
        ;
        /// One warning a second at most.
        warn: crate::connector::warn::WarnLimit,
    }
}

impl FeedCounters {
    /// True at most once a second: whether a warning may be logged now.
    fn may_warn(&self) -> bool {
        self.warn.allow()
    }
}

/// An OAuth bearer token and when to refresh it.
struct Token {
    access: String,
    refresh_at: Instant,
}

/// State shared by a spout and its clones (every task of a topology-file component).
struct Shared {
    counters: FeedCounters,
    client: reqwest::Client,
    token: tokio::sync::Mutex<Option<Token>>,
    /// No request before this instant (rate limits).
    not_before: Mutex<Option<Instant>>,
    /// New items still to emit over all tasks (`max_items`; `u64::MAX` = no end).
    items_left: AtomicU64,
}

impl Shared {
    fn delay_until(&self, at: Instant) {
        if let Ok(mut nb) = self.not_before.lock()
            && nb.is_none_or(|t| t < at)
        {
            *nb = Some(at);
        }
    }

    fn ready(&self, now: Instant) -> bool {
        self.not_before
            .lock()
            .map(|nb| nb.is_none_or(|t| t <= now))
            .unwrap_or(true)
    }

    /// Takes up to `n` items from `items_left`; returns how many were granted.
    fn reserve(&self, n: u64) -> u64 {
        let mut granted = 0;
        let _ = self.items_left.fetch_update(Relaxed, Relaxed, |left| {
            if left == u64::MAX {
                granted = n;
                return None;
            }
            granted = n.min(left);
            Some(left - granted)
        });
        granted
    }

    fn ended(&self) -> bool {
        self.items_left.load(Relaxed) == 0
    }
}

/// The `feed` spout (see the module docs). Cloning gives a fresh, unopened spout with the same
/// options that shares the counters, the HTTP client, the OAuth token, rate-limit waits and the
/// `max_items` budget.
pub struct FeedSpout {
    opts: Arc<FeedOptions>,
    /// `base` with its default applied, without a trailing `/`.
    base: Arc<str>,
    shared: Arc<Shared>,
    task: Option<TaskState>,
}

impl Clone for FeedSpout {
    fn clone(&self) -> Self {
        FeedSpout {
            opts: self.opts.clone(),
            base: self.base.clone(),
            shared: self.shared.clone(),
            task: None,
        }
    }
}

/// Checks an `http(s)://` URL option.
fn check_url(option: &str, address: &str) -> Result<(), String> {
    let url = crate::connector::redact(address);
    match reqwest::Url::parse(address) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        Ok(_) => Err(format!(
            "option `{option}` = {url:?}: expected an http:// or https:// URL"
        )),
        Err(e) => Err(format!(
            "option `{option}` = {url:?}: {e}; expected an http:// or https:// URL"
        )),
    }
}

/// Checks a subreddit spec: names of letters, digits and `_`, joined by `+`.
fn check_subreddit(s: &str) -> Result<(), String> {
    let ok = s.split('+').all(|part| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "option `subreddits`: {s:?} is not a subreddit name: expected letters, digits and `_`, several joined by `+` (e.g. \"worldnews\" or \"news+politics\"), without \"r/\""
        ))
    }
}

fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl FeedSpout {
    /// A feed spout with these options, or what is wrong with them.
    pub fn new(opts: FeedOptions) -> Result<FeedSpout, String> {
        if opts.subreddits.is_empty() {
            return Err(
                "option `subreddits` is empty: expected at least one subreddit (e.g. [\"worldnews\"])"
                    .to_string(),
            );
        }
        let mut names = HashSet::new();
        for s in &opts.subreddits {
            check_subreddit(s)?;
            if !names.insert(s.to_ascii_lowercase()) {
                return Err(format!(
                    "option `subreddits`: {s:?} is listed twice: expected each subreddit once"
                ));
            }
        }
        if !(1..=100).contains(&opts.limit) {
            return Err(format!(
                "option `limit` = {}: expected from 1 to 100 (Reddit's page size)",
                opts.limit
            ));
        }
        if opts.poll_interval.is_zero() {
            return Err("option `poll_interval` = \"0s\": expected more than zero".to_string());
        }
        for (name, d) in [
            ("max_poll_interval", opts.max_poll_interval),
            ("max_backoff", opts.max_backoff),
        ] {
            if d < opts.poll_interval {
                return Err(format!(
                    "option `{name}` = {:?}: expected at least `poll_interval` ({:?})",
                    duration_text(d),
                    duration_text(opts.poll_interval)
                ));
            }
        }
        if opts.timeout.is_zero() {
            return Err("option `timeout` = \"0s\": expected more than zero".to_string());
        }
        if !(1..=100).contains(&opts.max_pages) {
            return Err(format!(
                "option `max_pages` = {}: expected from 1 to 100",
                opts.max_pages
            ));
        }
        let page_reach = opts.limit as usize * opts.max_pages as usize;
        if opts.max_seen < page_reach {
            return Err(format!(
                "option `max_seen` = {}: expected at least `limit` × `max_pages` = {page_reach} (better: more than the listing's reach, 1000 on Reddit)",
                opts.max_seen
            ));
        }
        if opts.user_agent.trim().is_empty() {
            return Err("option `user_agent` is empty: Reddit requires a descriptive one, e.g. \"linux:my-app:v1.0 (by /u/me)\"".to_string());
        }
        let agent = HeaderValue::from_str(&opts.user_agent).map_err(|_| {
            format!(
                "option `user_agent` = {:?}: expected visible ASCII text (a valid header value)",
                opts.user_agent
            )
        })?;
        if let Some(o) = &opts.oauth {
            if o.client_id.is_empty() {
                return Err(
                    "option `oauth.client_id` is empty: expected the application's client id"
                        .to_string(),
                );
            }
            check_url("oauth.token_url", &o.token_url)?;
        }
        let base = match &opts.base {
            Some(b) => {
                check_url("base", b)?;
                b.trim_end_matches('/').to_string()
            }
            None if opts.oauth.is_some() => REDDIT_OAUTH_BASE.to_string(),
            None => REDDIT_BASE.to_string(),
        };
        if opts
            .state_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(
                "option `state_dir` is empty: expected a directory, or leave it unset".to_string(),
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, agent);
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let items_left = if opts.max_items == 0 {
            u64::MAX
        } else {
            opts.max_items
        };
        Ok(FeedSpout {
            opts: Arc::new(opts),
            base: Arc::from(base),
            shared: Arc::new(Shared {
                counters: FeedCounters::default(),
                client,
                token: tokio::sync::Mutex::new(None),
                not_before: Mutex::new(None),
                items_left: AtomicU64::new(items_left),
            }),
            task: None,
        })
    }

    /// What the spout has seen so far, over every task of this spout and its clones.
    pub fn counters(&self) -> &FeedCounters {
        &self.shared.counters
    }

    /// The state file of a subreddit in `state_dir`.
    pub fn state_file(state_dir: &Path, listing: FeedListing, subreddit: &str) -> PathBuf {
        state_dir.join(format!("{}-{subreddit}.seen", listing.name()))
    }
}

/// A state file's text: the header, then the fullnames one a line.
fn state_text<'a>(names: impl Iterator<Item = &'a SmolStr>) -> String {
    let mut text = String::from(STATE_HEADER);
    text.push('\n');
    for name in names {
        text.push_str(name);
        text.push('\n');
    }
    text
}

/// One subreddit's state in a checkpoint (the state part `seen`, a list of them per task).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct SavedSource {
    subreddit: String,
    /// No poll completed yet (the first one takes the current listing only).
    fresh: bool,
    /// The seen set, least recently seen first.
    seen: Vec<SmolStr>,
    /// The bad children without a fullname already reported.
    nameless: Vec<u64>,
}

/// What a task writes to a state file when a checkpoint completes.
struct SavedFile {
    source: usize,
    version: u64,
    text: String,
}

/// Fullnames, least recently seen first, at most `cap` of them.
struct Seen {
    stamp: u64,
    by_name: HashMap<SmolStr, u64>,
    by_stamp: BTreeMap<u64, SmolStr>,
    cap: usize,
}

impl Seen {
    fn new(cap: usize) -> Seen {
        Seen {
            stamp: 0,
            by_name: HashMap::new(),
            by_stamp: BTreeMap::new(),
            cap,
        }
    }

    /// Adds `name`, or makes it the most recently seen.
    fn insert(&mut self, name: SmolStr) {
        self.stamp += 1;
        if let Some(old) = self.by_name.insert(name.clone(), self.stamp) {
            self.by_stamp.remove(&old);
        }
        self.by_stamp.insert(self.stamp, name);
        while self.by_name.len() > self.cap {
            match self.by_stamp.pop_first() {
                Some((_, oldest)) => {
                    self.by_name.remove(&oldest);
                }
                None => break,
            }
        }
    }

    /// Whether `name` is known; if so it becomes the most recently seen.
    fn touch(&mut self, name: &SmolStr) -> bool {
        if self.by_name.contains_key(name) {
            self.insert(name.clone());
            true
        } else {
            false
        }
    }

    /// The fullnames, least recently seen first.
    fn names(&self) -> impl Iterator<Item = &SmolStr> {
        self.by_stamp.values()
    }

    /// A set of `names` (least recently seen first), keeping the last `cap`.
    fn from_names(names: impl IntoIterator<Item = SmolStr>, cap: usize) -> Seen {
        let mut seen = Seen::new(cap);
        for n in names {
            seen.insert(n);
        }
        seen
    }

    #[cfg(test)]
    fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The state file's text.
    fn to_text(&self) -> String {
        state_text(self.by_stamp.values())
    }

    /// Reads a state file; a missing file is an empty set.
    fn load(path: &Path, cap: usize) -> Result<Seen, String> {
        let mut seen = Seen::new(cap);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(seen),
            Err(e) => {
                return Err(format!(
                    "cannot read the state file {}: {e}",
                    path.display()
                ));
            }
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !is_fullname(line) {
                return Err(format!(
                    "state file {}:{}: {line:?} is not a fullname: expected kind_id such as \"t3_1abcde\" (delete the file to start over)",
                    path.display(),
                    n + 1
                ));
            }
            seen.insert(SmolStr::new(line));
        }
        Ok(seen)
    }
}

/// `t3_1abcde` and the like.
fn is_fullname(s: &str) -> bool {
    match s.split_once('_') {
        Some((kind, id)) => {
            kind.len() >= 2
                && kind.starts_with('t')
                && kind[1..].chars().all(|c| c.is_ascii_digit())
                && !id.is_empty()
                && id.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, fsynced, renamed
/// over `path`, then the directory fsynced.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".seen-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// What one poll request asks for.
#[derive(Clone, Debug)]
enum Request {
    /// Newest first, optionally from after an item (older ones).
    Plain { after: Option<SmolStr> },
    /// Items newer than the cursor.
    Before { cursor: SmolStr },
}

/// A listing item, ready to emit.
struct Item {
    fullname: SmolStr,
    values: Values,
}

/// A listing child.
enum Child {
    Item(Item),
    /// A child of an unknown kind, or one that lacks what identifies an item.
    Bad {
        /// Its fullname when it has one (so that it is reported once).
        name: Option<SmolStr>,
        reason: String,
        /// The first KiB of its JSON.
        raw: String,
        /// A hash of its whole JSON, which tells bad children without a fullname apart.
        print: u64,
    },
}

impl Child {
    /// The child's fullname, if it has one.
    fn fullname(&self) -> Option<SmolStr> {
        match self {
            Child::Item(item) => Some(item.fullname.clone()),
            Child::Bad { name, .. } => name.clone(),
        }
    }
}

/// A listing page as received.
struct Page {
    children: Vec<Child>,
    /// The page's `data.after`.
    after: Option<SmolStr>,
    /// The fullname of the first (newest) child.
    first: Option<SmolStr>,
    /// The fullname of the last (oldest) child.
    last: Option<SmolStr>,
}

/// Why a request is to be made again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transient {
    /// 5xx.
    Server,
    /// 429.
    RateLimited,
    /// No answer.
    Network,
    /// The token request failed.
    Token,
}

/// The outcome of one request.
enum Fetched {
    Page(Page),
    /// Try again after `wait` (or the error backoff).
    Retry {
        cause: Transient,
        reason: String,
        wait: Option<Duration>,
    },
    /// A response that is not a usable Listing: to the `error` stream.
    Bad {
        reason: String,
        raw: String,
    },
}

/// The first KiB of `bytes`, as text.
fn prefix(bytes: &[u8]) -> String {
    let end = bytes.len().min(RAW_PREFIX);
    let mut s = String::from_utf8_lossy(&bytes[..end]).into_owned();
    // A multi-byte character cut at the end becomes U+FFFD: fine for a diagnostic.
    s.truncate(s.len().min(RAW_PREFIX * 3));
    s
}

/// A header's value as a number of seconds.
fn header_secs(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v.min(86_400.0))
}

/// Notes `X-Ratelimit-*`: with less than one request left, every task waits for the reset.
fn note_rate_limit(shared: &Shared, headers: &HeaderMap, source: &str) {
    let remaining = header_secs(headers, "x-ratelimit-remaining");
    let reset = header_secs(headers, "x-ratelimit-reset");
    if let (Some(remaining), Some(reset)) = (remaining, reset)
        && remaining < 1.0
    {
        shared.counters.rate_limit_waits.fetch_add(1, Relaxed);
        let used = header_secs(headers, "x-ratelimit-used");
        tracing::info!(
            source,
            remaining,
            used,
            reset_in = %duration_text(secs(reset)),
            "rate limit reached: waiting for its reset"
        );
        shared.delay_until(Instant::now() + secs(reset));
    }
}

/// The bearer token, fetched (or refreshed when `force` or due) with the client credentials.
async fn bearer(shared: &Shared, oauth: &OAuthOptions, force: bool) -> Result<String, Fetched> {
    let mut token = shared.token.lock().await;
    if !force
        && let Some(t) = token.as_ref()
        && Instant::now() < t.refresh_at
    {
        return Ok(t.access.clone());
    }
    *token = None;
    shared.counters.token_requests.fetch_add(1, Relaxed);
    let credentials = crate::connector::oauth::ClientCredentials {
        token_url: &oauth.token_url,
        client_id: &oauth.client_id,
        client_secret: &oauth.client_secret,
        scope: None,
        option: "oauth",
    };
    let t = crate::connector::oauth::fetch_token(&shared.client, credentials)
        .await
        .map_err(|e| Fetched::Retry {
            cause: Transient::Token,
            reason: e.reason,
            wait: e.retry_after,
        })?;
    let life = t.lifetime;
    let margin = (life / 10).min(Duration::from_secs(60));
    let access = t.access;
    *token = Some(Token {
        access: access.clone(),
        refresh_at: Instant::now() + life - margin,
    });
    Ok(access)
}

/// One listing request (with a token refresh and one retry on 401), parsed.
async fn fetch(
    shared: Arc<Shared>,
    opts: Arc<FeedOptions>,
    url: String,
    query: Vec<(&'static str, String)>,
    source: SmolStr,
) -> Fetched {
    let mut refreshed = false;
    loop {
        let mut req = shared.client.get(&url).query(&query);
        if let Some(oauth) = &opts.oauth {
            match bearer(&shared, oauth, refreshed).await {
                Ok(t) => req = req.bearer_auth(t),
                Err(f) => return f,
            }
        }
        shared.counters.requests.fetch_add(1, Relaxed);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Fetched::Retry {
                    cause: Transient::Network,
                    reason: format!("request to {url} failed: {e}"),
                    wait: None,
                };
            }
        };
        let status = resp.status();
        note_rate_limit(&shared, resp.headers(), &source);
        if status == StatusCode::UNAUTHORIZED && opts.oauth.is_some() && !refreshed {
            shared.counters.unauthorized.fetch_add(1, Relaxed);
            refreshed = true;
            continue;
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let headers = resp.headers();
            let wait = header_secs(headers, RETRY_AFTER.as_str())
                .or_else(|| header_secs(headers, "x-ratelimit-reset"))
                .map(secs);
            return Fetched::Retry {
                cause: Transient::RateLimited,
                reason: format!("HTTP 429 Too Many Requests from {url}"),
                wait,
            };
        }
        if status.is_server_error() {
            return Fetched::Retry {
                cause: Transient::Server,
                reason: format!("HTTP {status} from {url}"),
                wait: None,
            };
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Fetched::Retry {
                    cause: Transient::Network,
                    reason: format!("reading the response of {url} failed: {e}"),
                    wait: None,
                };
            }
        };
        if !status.is_success() {
            let hint = match status {
                StatusCode::UNAUTHORIZED if opts.oauth.is_some() => " (even with a fresh token)",
                StatusCode::FORBIDDEN => " (a private or quarantined subreddit?)",
                StatusCode::NOT_FOUND => " (no such subreddit, or banned?)",
                _ => "",
            };
            return Fetched::Bad {
                reason: format!("HTTP {status} from {url}{hint}"),
                raw: prefix(&body),
            };
        }
        return parse_listing(&body, &url);
    }
}

#[derive(Deserialize)]
struct ListingDoc {
    kind: String,
    data: ListingData,
}

#[derive(Deserialize)]
struct ListingData {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    children: Option<Vec<serde_json::Value>>,
}

/// A listing body to a page, or why it is not one.
fn parse_listing(body: &[u8], url: &str) -> Fetched {
    let doc: ListingDoc = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => {
            let reason = match e.classify() {
                serde_json::error::Category::Data => format!(
                    "unexpected response shape from {url}: {e}; expected a Listing {{\"kind\": \"Listing\", \"data\": {{\"children\": [..]}}}}"
                ),
                _ => format!("invalid JSON from {url}: {e}"),
            };
            return Fetched::Bad {
                reason,
                raw: prefix(body),
            };
        }
    };
    if doc.kind != "Listing" {
        return Fetched::Bad {
            reason: format!(
                "unexpected response from {url}: kind {:?}, expected \"Listing\"",
                doc.kind
            ),
            raw: prefix(body),
        };
    }
    let Some(children) = doc.data.children else {
        return Fetched::Bad {
            reason: format!(
                "unexpected response shape from {url}: a Listing without `data.children`"
            ),
            raw: prefix(body),
        };
    };
    let children: Vec<Child> = children.iter().map(child).collect();
    let first = children.iter().find_map(Child::fullname);
    let last = children.iter().rev().find_map(Child::fullname);
    Fetched::Page(Page {
        children,
        after: doc.data.after.map(SmolStr::from),
        first,
        last,
    })
}

/// A hash of a bad child's JSON.
fn fingerprint(text: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Whether `s` is a Reddit id (base 36: letters and digits).
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A string field of a child's `data`: `None` when missing, null or not a string.
fn str_field<'a>(data: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    data.get(field).and_then(|v| v.as_str())
}

/// The (`id`, fullname) of a listing child of kind `kind` (`"t3"` or `"t1"`): its `id` and
/// `name`, either one derived from the other when missing (`name` = `{kind}_{id}`), or why they
/// do not identify an item.
fn identity(kind: &str, data: &serde_json::Value) -> Result<(SmolStr, SmolStr), String> {
    let field = |f: &str| -> Result<Option<&str>, String> {
        match data.get(f) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(format!(
                "{kind} child: field `{f}` = {v}: expected a string (e.g. `name` \"{kind}_abc123\", `id` \"abc123\")"
            )),
        }
    };
    let name = field("name")?;
    let id = field("id")?;
    match (name, id) {
        (None, None) => Err(format!(
            "{kind} child: missing field `name` and `id`: expected at least one of them to identify the item (e.g. `name` \"{kind}_abc123\" or `id` \"abc123\")"
        )),
        (Some(n), id) => {
            let Some(from_name) = n
                .strip_prefix(kind)
                .and_then(|r| r.strip_prefix('_'))
                .filter(|r| is_id(r))
            else {
                return Err(format!(
                    "{kind} child: field `name` = {n:?} is not a {kind} fullname: expected \"{kind}_\" and a base-36 id, e.g. \"{kind}_abc123\""
                ));
            };
            match id {
                Some(i) if i != from_name => Err(format!(
                    "{kind} child {n}: field `id` = {i:?} does not match `name`: expected {from_name:?}"
                )),
                _ => Ok((SmolStr::new(from_name), SmolStr::new(n))),
            }
        }
        (None, Some(i)) if is_id(i) => Ok((SmolStr::new(i), SmolStr::new(format!("{kind}_{i}")))),
        (None, Some(i)) => Err(format!(
            "{kind} child: field `id` = {i:?} is not a Reddit id: expected letters and digits, e.g. \"abc123\""
        )),
    }
}

/// The path of `url` (without query or fragment) when it is a page of Reddit (on `reddit.com`
/// or one of its subdomains), or `url` itself when it is already a path. The path is taken as
/// written, not normalised.
fn reddit_path(url: &str) -> Option<&str> {
    let path = if url.starts_with('/') {
        url
    } else {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let (host, path) = rest.split_at(rest.find('/')?);
        let host = host.to_ascii_lowercase();
        if host != "reddit.com" && !host.ends_with(".reddit.com") {
            return None;
        }
        path
    };
    Some(path.split(['?', '#']).next().unwrap_or(path))
}

/// A comment's permalink as Reddit writes it, `/r/{subreddit}/comments/{link}/{slug}/{id}/`,
/// derived from `subreddit`, `link_id` (`t3_{link}`) and `id`. The slug (Reddit ignores it) is
/// the submission's, read from `link_permalink` or `link_url` when one of them is that
/// submission's own page (as for a self post), else `_`. `None` without `subreddit` or
/// `link_id`.
fn comment_permalink(data: &serde_json::Value, id: &str) -> Option<String> {
    let subreddit = str_field(data, "subreddit").filter(|s| !s.is_empty())?;
    let link = str_field(data, "link_id")?
        .strip_prefix("t3_")
        .filter(|l| is_id(l))?;
    let prefix = format!("/r/{subreddit}/comments/{link}/");
    let slug = ["link_permalink", "link_url"]
        .iter()
        .filter_map(|f| reddit_path(str_field(data, f)?))
        .find_map(|path| {
            let head = path.get(..prefix.len())?;
            if !head.eq_ignore_ascii_case(&prefix) {
                return None;
            }
            let rest = &path[prefix.len()..];
            let slug = rest.strip_suffix('/').unwrap_or(rest);
            (!slug.is_empty() && !slug.contains('/')).then_some(slug)
        })
        .unwrap_or("_");
    Some(format!("{prefix}{slug}/{id}/"))
}

/// A submission's permalink in Reddit's shape, `/r/{subreddit}/comments/{id}/_/` (the slug,
/// which Reddit ignores, as `_`), derived from `subreddit` and `id`. `None` without `subreddit`.
fn submission_permalink(data: &serde_json::Value, id: &str) -> Option<String> {
    let subreddit = str_field(data, "subreddit").filter(|s| !s.is_empty())?;
    Some(format!("/r/{subreddit}/comments/{id}/_/"))
}

/// A listing child to an item, or why it is not one. Only what identifies an item is required
/// (`name` or `id`, and `created_utc`); a missing `permalink` is derived, and other missing
/// fields are null (see the module docs).
fn child(c: &serde_json::Value) -> Child {
    let data = c.get("data").filter(|d| d.is_object());
    let kind = c.get("kind").and_then(|k| k.as_str());
    let bad = |name: Option<SmolStr>, reason: String| {
        let text = c.to_string();
        Child::Bad {
            name,
            reason,
            raw: prefix(text.as_bytes()),
            print: fingerprint(&text),
        }
    };
    let (kind, data) = match (kind, data) {
        (Some(k @ ("t3" | "t1")), Some(d)) => (k, d),
        (Some(k @ ("t3" | "t1")), None) => {
            return bad(None, format!("{k} child without a `data` object"));
        }
        (k, _) => {
            let name = data
                .and_then(|d| str_field(d, "name"))
                .filter(|n| is_fullname(n))
                .map(SmolStr::new);
            let reason = match k {
                // Reddit answers a request for a subreddit that does not exist with a redirect
                // to a subreddit search: a listing of t5 (subreddit) children.
                Some(k) => {
                    let hint = if k == "t5" {
                        " (a subreddit search result: does the subreddit exist?)"
                    } else {
                        ""
                    };
                    format!(
                        "child of kind {k:?}: expected \"t3\" (submission) or \"t1\" (comment){hint}"
                    )
                }
                None => "child without a `kind`".to_string(),
            };
            return bad(name, reason);
        }
    };
    let (id, fullname) = match identity(kind, data) {
        Ok(ident) => ident,
        Err(reason) => return bad(None, reason),
    };
    let created = match data.get("created_utc") {
        None | Some(serde_json::Value::Null) => {
            return bad(
                Some(fullname.clone()),
                format!(
                    "{kind} child {fullname}: missing field `created_utc`: expected epoch seconds (a number)"
                ),
            );
        }
        Some(v) => match v.as_f64().filter(|t| t.is_finite()) {
            Some(t) => t,
            None => {
                return bad(
                    Some(fullname.clone()),
                    format!(
                        "{kind} child {fullname}: field `created_utc` = {v}: expected epoch seconds (a number)"
                    ),
                );
            }
        },
    };
    let text = |field: &str| -> Value {
        str_field(data, field).map_or(Value::Null, |s| Value::Str(SmolStr::new(s)))
    };
    let int = |field: &str| -> Value {
        data.get(field)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .map_or(Value::Null, Value::Int)
    };
    let derived = if kind == "t3" {
        submission_permalink(data, &id)
    } else {
        comment_permalink(data, &id)
    };
    let permalink = match text("permalink") {
        Value::Null => derived.map_or(Value::Null, |p| Value::Str(SmolStr::new(p))),
        given => given,
    };
    let (title, num_comments, url, body) = if kind == "t3" {
        (
            text("title"),
            int("num_comments"),
            text("url"),
            text("selftext"),
        )
    } else {
        (Value::Null, Value::Null, Value::Null, text("body"))
    };
    let values = values![
        id,
        fullname.clone(),
        kind,
        text("subreddit"),
        title,
        text("author"),
        created as i64,
        int("score"),
        num_comments,
        url,
        permalink,
        body
    ];
    Child::Item(Item { fullname, values })
}

/// A poll in progress: its next request and what its pages brought so far, oldest first.
struct PollRun {
    request: Request,
    pages: u32,
    /// New children, oldest first: items, and bad children to report.
    items: VecDeque<Child>,
    /// The fullnames the poll fetched.
    names: HashSet<SmolStr>,
    /// The fingerprints of the bad children without a fullname the poll fetched.
    nameless: HashSet<u64>,
    /// The newest fullname the poll fetched (the next cursor).
    newest: Option<SmolStr>,
}

/// One subreddit polled by this task.
struct Source {
    name: SmolStr,
    url: String,
    file: PathBuf,
    seen: Seen,
    /// Queued or emitted, not yet acked.
    inflight: HashSet<SmolStr>,
    /// The newest fullname fetched: the next poll asks for items before it.
    cursor: Option<SmolStr>,
    /// The last `before` poll brought nothing: the next one is plain.
    verify: bool,
    /// No state file yet: the first poll takes the current listing only.
    fresh: bool,
    dirty: bool,
    /// Changes of the state (seen set, nameless, fresh) so far.
    version: u64,
    /// With checkpoints: the version the last completed checkpoint holds.
    saved_version: u64,
    next_poll: Instant,
    idle_wait: Duration,
    error_wait: Duration,
    run: Option<PollRun>,
    /// The fingerprints of the bad children without a fullname already reported (in memory
    /// only, at most `max_seen`), so that a plain poll does not report them again.
    nameless: HashSet<u64>,
}

impl Source {
    /// Remembers a bad child without a fullname as reported.
    fn remember_nameless(&mut self, print: u64, cap: usize) {
        if self.nameless.len() >= cap {
            self.nameless.clear();
        }
        self.nameless.insert(print);
        self.version += 1;
    }

    /// The seen set (or whether this is a first run) changed: it is to be written.
    fn changed(&mut self) {
        self.dirty = true;
        self.version += 1;
    }
}

/// An emitted (or queued) item, kept until acked.
struct Pending {
    source: usize,
    fullname: SmolStr,
    values: Values,
}

/// A task's state, made in `open`.
struct TaskState {
    sources: Vec<Source>,
    job: Option<(usize, JoinHandle<Fetched>)>,
    pending: HashMap<u64, Pending>,
    /// New items to emit, oldest first.
    queue: VecDeque<u64>,
    /// Failed items to emit again.
    replay: VecDeque<u64>,
    next_id: u64,
    max_pending: usize,
    last_flush: Instant,
    component: SmolStr,
    /// The run takes checkpoints: the state files are written only when one completes.
    checkpointed: bool,
    /// Acking is off: an emitted item is covered by the next checkpoint.
    exactly_once: bool,
    /// The files of checkpoints not yet complete, oldest first.
    at_checkpoints: crate::connector::state::PendingPositions<Vec<SavedFile>>,
    /// The last state file write started by a completed checkpoint.
    last_save: Option<JoinHandle<()>>,
}

impl Spout for FeedSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(FIELDS);
        out.declare_stream(ERROR_STREAM, SOURCE_ERROR_FIELDS);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let dir = state_dir(
            self.opts.state_dir.as_deref(),
            ctx.topology(),
            ctx.component_id(),
        );
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let now = Instant::now();
        let mut sources = Vec::new();
        for (i, name) in self.opts.subreddits.iter().enumerate() {
            if i % ctx.parallelism() != ctx.task_index() {
                continue;
            }
            let file = FeedSpout::state_file(&dir, self.opts.listing, name);
            let seen = Seen::load(&file, self.opts.max_seen)?;
            let fresh = !file.exists();
            sources.push(Source {
                name: SmolStr::new(name),
                url: format!("{}/r/{name}/{}", self.base, self.opts.listing.path()),
                file,
                fresh,
                seen,
                inflight: HashSet::new(),
                cursor: None,
                verify: false,
                dirty: false,
                version: 0,
                saved_version: 0,
                next_poll: now,
                idle_wait: self.opts.poll_interval,
                error_wait: self.opts.poll_interval,
                run: None,
                nameless: HashSet::new(),
            });
        }
        self.task = Some(TaskState {
            sources,
            job: None,
            pending: HashMap::new(),
            queue: VecDeque::new(),
            replay: VecDeque::new(),
            // From a random start, so that the ids a restarted task's predecessor had pending
            // (failed to this instance by the runtime) name none of this one's items.
            next_id: fastrand::u64(..),
            max_pending: ctx.config().max_spout_pending.unwrap_or(usize::MAX),
            last_flush: now,
            component: SmolStr::new(ctx.component_id()),
            checkpointed: ctx.checkpointed(),
            exactly_once: ctx.config().guarantee == Guarantee::ExactlyOnce,
            at_checkpoints: Default::default(),
            last_save: None,
        });
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        if task.job.as_ref().is_some_and(|(_, h)| h.is_finished())
            && let Some((i, handle)) = task.job.take()
        {
            let fetched = handle.await.unwrap_or_else(|e| Fetched::Retry {
                cause: Transient::Network,
                reason: format!("the poll task failed: {e}"),
                wait: None,
            });
            task.on_fetched(i, fetched, &self.opts, &self.shared, out);
        }
        let ended = self.shared.ended();
        let force = ended && task.pending.is_empty();
        if !task.checkpointed {
            task.flush(force, &self.shared).await;
        }
        if task.job.is_none() && !ended {
            task.start_job(&self.opts, &self.shared);
        }
        task.emit(out);
        Ok(())
    }

    fn ack(&mut self, id: u64) {
        if let Some(task) = &mut self.task
            && let Some(p) = task.pending.remove(&id)
            && let Some(src) = task.sources.get_mut(p.source)
        {
            src.inflight.remove(&p.fullname);
            src.seen.insert(p.fullname);
            src.changed();
        }
    }

    fn fail(&mut self, id: u64) {
        if let Some(task) = &mut self.task
            && task.pending.contains_key(&id)
        {
            task.replay.push_back(id);
        }
    }

    fn is_exhausted(&self) -> bool {
        self.task.as_ref().is_some_and(|t| {
            let written = if t.checkpointed {
                // A completed checkpoint holds the last state, and its files are written.
                t.sources.iter().all(|s| s.saved_version == s.version)
                    && t.last_save.as_ref().is_none_or(JoinHandle::is_finished)
            } else {
                t.sources.iter().all(|s| !s.dirty)
            };
            t.sources.is_empty()
                || (self.shared.ended() && t.job.is_none() && t.pending.is_empty() && written)
        })
    }

    fn rewinds(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let Some(task) = &mut self.task else {
            return Ok(());
        };
        // Under exactly-once an emitted item is covered by this checkpoint even before its ack
        // arrives: it joins the set here. Queued items were not emitted.
        let mut emitted: Vec<Vec<SmolStr>> = vec![Vec::new(); task.sources.len()];
        if task.exactly_once {
            let queued: HashSet<u64> = task.queue.iter().copied().collect();
            for (id, p) in &task.pending {
                if !queued.contains(id)
                    && let Some(e) = emitted.get_mut(p.source)
                {
                    e.push(p.fullname.clone());
                }
            }
        }
        let mut saved = Vec::with_capacity(task.sources.len());
        let mut files = Vec::with_capacity(task.sources.len());
        for (i, (src, extra)) in task.sources.iter().zip(emitted).enumerate() {
            let mut names: Vec<SmolStr> = src.seen.names().cloned().collect();
            names.extend(
                extra
                    .into_iter()
                    .filter(|n| !src.seen.by_name.contains_key(n)),
            );
            files.push(SavedFile {
                source: i,
                version: src.version,
                text: state_text(names.iter()),
            });
            saved.push(SavedSource {
                subreddit: src.name.to_string(),
                fresh: src.fresh,
                seen: names,
                nameless: src.nameless.iter().copied().collect(),
            });
        }
        snap.put("seen", &saved);
        task.at_checkpoints.taken(snap.checkpoint_id(), files);
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let Some(task) = &mut self.task else {
            return Ok(());
        };
        // Every old task's subreddits: the subreddits are dealt out anew when the parallelism
        // changed.
        let mut saved: HashMap<String, SavedSource> = HashMap::new();
        for list in from.get_all::<Vec<SavedSource>>("seen")? {
            for s in list {
                saved.insert(s.subreddit.clone(), s);
            }
        }
        let cap = self.opts.max_seen;
        for src in &mut task.sources {
            match saved.remove(src.name.as_str()) {
                Some(s) => {
                    src.seen = Seen::from_names(s.seen, cap);
                    src.nameless = s.nameless.into_iter().collect();
                    src.fresh = s.fresh;
                }
                // Not in the checkpoint (added to `subreddits` since): a first run for it.
                None => {
                    src.seen = Seen::new(cap);
                    src.nameless.clear();
                    src.fresh = true;
                }
            }
            src.cursor = None;
            src.verify = false;
            src.dirty = false;
            src.saved_version = src.version;
        }
        Ok(())
    }

    fn checkpoint_complete(&mut self, id: CheckpointId) {
        let Some(task) = &mut self.task else {
            return;
        };
        if !task.checkpointed {
            return;
        }
        let Some(files) = task.at_checkpoints.completed(id) else {
            return;
        };
        let mut writes = Vec::with_capacity(files.len());
        for f in files {
            if let Some(src) = task.sources.get_mut(f.source) {
                src.saved_version = f.version;
                src.dirty = false;
                writes.push((src.file.clone(), f.text));
            }
        }
        let shared = self.shared.clone();
        let component = task.component.clone();
        // In order: a slow write must not land after a newer one.
        let previous = task.last_save.take();
        task.last_save = Some(crate::connector::warn::spawn(async move {
            if let Some(p) = previous {
                let _ = p.await;
            }
            for (path, text) in writes {
                let file = path.clone();
                let written = tokio::task::spawn_blocking(move || write_atomically(&path, &text))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r);
                match written {
                    Ok(()) => {
                        shared.counters.state_writes.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        shared.counters.state_write_errors.fetch_add(1, Relaxed);
                        if shared.counters.may_warn() {
                            tracing::warn!(
                                component = %component,
                                file = %file.display(),
                                "cannot write the seen set of checkpoint {id} (a later checkpoint writes it): {e}"
                            );
                        }
                    }
                }
            }
        }));
    }

    async fn close(&mut self) {
        if let Some(task) = &mut self.task {
            if let Some((_, handle)) = task.job.take() {
                handle.abort();
            }
            if task.checkpointed {
                // The files hold the last completed checkpoint's sets: nothing more is written.
                if let Some(h) = task.last_save.take() {
                    let _ = h.await;
                }
            } else {
                task.flush(true, &self.shared).await;
            }
        }
    }
}

impl TaskState {
    /// Starts the next request: a poll's next page, or the poll of the most overdue source.
    fn start_job(&mut self, opts: &Arc<FeedOptions>, shared: &Arc<Shared>) {
        let now = Instant::now();
        if !shared.ready(now) {
            return;
        }
        // A poll's next page comes first; a new poll waits until the items of the last one
        // are all emitted, so memory holds at most one poll's items besides the pending ones.
        let waiting = !self.queue.is_empty();
        let pick = self
            .sources
            .iter()
            .position(|s| s.run.is_some())
            .or_else(|| {
                if waiting {
                    return None;
                }
                self.sources
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.next_poll <= now)
                    .min_by_key(|(_, s)| s.next_poll)
                    .map(|(i, _)| i)
            });
        let Some(i) = pick else {
            return;
        };
        let src = &mut self.sources[i];
        let run = src.run.get_or_insert_with(|| PollRun {
            request: match (&src.cursor, src.verify) {
                (Some(c), false) => Request::Before { cursor: c.clone() },
                _ => Request::Plain { after: None },
            },
            pages: 0,
            items: VecDeque::new(),
            names: HashSet::new(),
            nameless: HashSet::new(),
            newest: None,
        });
        let mut query = vec![("limit", opts.limit.to_string()), ("raw_json", "1".into())];
        match &run.request {
            Request::Before { cursor } => query.push(("before", cursor.to_string())),
            Request::Plain { after: Some(a) } => query.push(("after", a.to_string())),
            Request::Plain { after: None } => {}
        }
        let handle = crate::connector::warn::spawn(fetch(
            shared.clone(),
            opts.clone(),
            src.url.clone(),
            query,
            src.name.clone(),
        ));
        self.job = Some((i, handle));
    }

    /// Takes a request's outcome: keeps the page's new items and decides the next request, or
    /// reports the failure and waits.
    fn on_fetched(
        &mut self,
        i: usize,
        fetched: Fetched,
        opts: &FeedOptions,
        shared: &Shared,
        out: &mut SpoutCollector<'_, u64>,
    ) {
        let counters = &shared.counters;
        let Some(src) = self.sources.get_mut(i) else {
            return;
        };
        let Some(mut run) = src.run.take() else {
            return;
        };
        let now = Instant::now();
        let page = match fetched {
            Fetched::Page(p) => p,
            Fetched::Retry {
                cause,
                reason,
                wait,
            } => {
                let counter = match cause {
                    Transient::Server => &counters.server_errors,
                    Transient::RateLimited => &counters.rate_limited,
                    Transient::Network => &counters.request_errors,
                    Transient::Token => &counters.token_errors,
                };
                counter.fetch_add(1, Relaxed);
                let wait = wait.unwrap_or(src.error_wait);
                src.error_wait = (src.error_wait * 2).min(opts.max_backoff);
                if counters.may_warn() {
                    tracing::warn!(
                        component = %self.component,
                        subreddit = %src.name,
                        retry_in = %duration_text(wait),
                        "{reason}"
                    );
                }
                src.next_poll = now + wait;
                if cause == Transient::RateLimited {
                    shared.delay_until(now + wait);
                }
                return;
            }
            Fetched::Bad { reason, raw } => {
                counters.bad_responses.fetch_add(1, Relaxed);
                let wait = src.error_wait;
                src.error_wait = (src.error_wait * 2).min(opts.max_backoff);
                if counters.may_warn() {
                    tracing::warn!(
                        component = %self.component,
                        subreddit = %src.name,
                        retry_in = %duration_text(wait),
                        "{reason}; sent to the `error` stream"
                    );
                }
                out.emit_to(ERROR_STREAM, values![reason, raw], None);
                src.next_poll = now + wait;
                return;
            }
        };
        src.error_wait = opts.poll_interval;
        run.pages += 1;
        let full = page.children.len() >= opts.limit as usize;
        let mut fresh_items = Vec::new();
        let mut saw_known = false;
        // Oldest first, so that the seen set's recency follows the listing's order. Bad children
        // are kept in that order too: they are reported when the poll is complete, each taking
        // its place in `max_items` like an item.
        for c in page.children.into_iter().rev() {
            let known = match &c {
                Child::Item(Item { fullname: n, .. }) | Child::Bad { name: Some(n), .. } => {
                    let known =
                        src.seen.touch(n) || src.inflight.contains(n) || run.names.contains(n);
                    run.names.insert(n.clone());
                    known
                }
                Child::Bad {
                    name: None, print, ..
                } => src.nameless.contains(print) || !run.nameless.insert(*print),
            };
            if known {
                saw_known = true;
            } else {
                fresh_items.push(c);
            }
        }
        // `fresh_items` is oldest first; `before` pages come in newer and newer, `after` pages
        // in older and older.
        let next = match &run.request {
            Request::Before { .. } => {
                if page.first.is_some() {
                    run.newest = page.first.clone();
                }
                run.items.extend(fresh_items);
                match &page.first {
                    Some(first) if full && run.pages < opts.max_pages => Some(Request::Before {
                        cursor: first.clone(),
                    }),
                    _ => None,
                }
            }
            Request::Plain { .. } => {
                if run.newest.is_none() {
                    run.newest = page.first.clone();
                }
                let whole_page_new = !saw_known;
                for item in fresh_items.into_iter().rev() {
                    run.items.push_front(item);
                }
                match page.after.or(page.last) {
                    Some(after)
                        if full && whole_page_new && !src.fresh && run.pages < opts.max_pages =>
                    {
                        Some(Request::Plain { after: Some(after) })
                    }
                    _ => None,
                }
            }
        };
        if let Some(request) = next {
            run.request = request;
            src.run = Some(run);
            return;
        }
        // The poll is complete.
        let was_before = matches!(run.request, Request::Before { .. });
        let cut = full && run.pages >= opts.max_pages;
        src.verify = was_before && run.items.is_empty() && !cut;
        if let Some(n) = run.newest {
            src.cursor = Some(n);
        }
        let skip = src.fresh && opts.skip_existing;
        if src.fresh {
            // Write the state file even if nothing is acked yet: a restart then knows that
            // this is not a first run (and does not skip what it finds).
            src.fresh = false;
            src.changed();
        }
        let found = run.items.len();
        if skip {
            for c in run.items {
                match c {
                    Child::Item(Item { fullname: n, .. }) | Child::Bad { name: Some(n), .. } => {
                        src.seen.insert(n);
                    }
                    Child::Bad {
                        name: None, print, ..
                    } => src.remember_nameless(print, opts.max_seen),
                }
            }
            src.changed();
        } else {
            // Items and bad children alike take their place in `max_items`, oldest first: what
            // is sent to `error` is handled too, so a run whose items are all bad still ends.
            let granted = shared.reserve(found as u64) as usize;
            for c in run.items.into_iter().take(granted) {
                let item = match c {
                    Child::Item(item) => item,
                    Child::Bad {
                        name,
                        reason,
                        raw,
                        print,
                    } => {
                        counters.bad_items.fetch_add(1, Relaxed);
                        if counters.may_warn() {
                            tracing::warn!(
                                component = %self.component,
                                subreddit = %src.name,
                                "{reason}; sent to the `error` stream"
                            );
                        }
                        out.emit_to(ERROR_STREAM, values![reason, raw], None);
                        match name {
                            Some(n) => {
                                src.seen.insert(n);
                                src.changed();
                            }
                            None => src.remember_nameless(print, opts.max_seen),
                        }
                        continue;
                    }
                };
                counters.items.fetch_add(1, Relaxed);
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                src.inflight.insert(item.fullname.clone());
                self.pending.insert(
                    id,
                    Pending {
                        source: i,
                        fullname: item.fullname,
                        values: item.values,
                    },
                );
                self.queue.push_back(id);
            }
        }
        if cut {
            src.next_poll = now;
        } else if found > 0 {
            src.idle_wait = opts.poll_interval;
            src.next_poll = now + opts.poll_interval;
        } else {
            src.next_poll = now + src.idle_wait;
            src.idle_wait = (src.idle_wait * 2).min(opts.max_poll_interval);
        }
    }

    /// Writes the seen sets that changed, at most once a second unless `force`.
    async fn flush(&mut self, force: bool, shared: &Shared) {
        if !force && self.last_flush.elapsed() < FLUSH_EVERY {
            return;
        }
        self.last_flush = Instant::now();
        for src in self.sources.iter_mut().filter(|s| s.dirty) {
            let text = src.seen.to_text();
            let path = src.file.clone();
            let written = tokio::task::spawn_blocking(move || write_atomically(&path, &text))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
            match written {
                Ok(()) => {
                    src.dirty = false;
                    shared.counters.state_writes.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    shared.counters.state_write_errors.fetch_add(1, Relaxed);
                    if shared.counters.may_warn() {
                        tracing::warn!(
                            component = %self.component,
                            file = %src.file.display(),
                            "cannot write the seen set (retried at the next write): {e}"
                        );
                    }
                }
            }
        }
    }

    /// Emits replays first, then new items, up to [`DRAIN_PER_CALL`] and `max_spout_pending`.
    fn emit(&mut self, out: &mut SpoutCollector<'_, u64>) {
        let mut n = 0;
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            let Some(id) = self.replay.pop_front().or_else(|| self.queue.pop_front()) else {
                break;
            };
            if let Some(p) = self.pending.get(&id) {
                out.emit(p.values.clone(), id);
                n += 1;
            }
        }
    }
}

/// The `feed` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "feed",
            "new submissions or comments of subreddits from a Reddit-compatible listing API, each once across polls and restarts (seen set written after acks), oldest first; OAuth, rate limits; bad responses to `error`",
            FeedSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components feed`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[spouts.news]
kind = "feed"
subreddits = ["worldnews", "news+politics"]   # "a+b": one multireddit
listing = "submissions"   # or "comments"
user_agent = "linux:my-news-app:v1.0 (by /u/me)"
poll_interval = "5s"      # polls that bring nothing back off up to max_poll_interval
max_poll_interval = "16s"
# oauth = { client_id = "...", client_secret = "..." }   # then oauth.reddit.com
# state_dir = "state/news"  # seen fullnames, written after acks; a restart emits each item once
max_items = 0             # 0 = without end; n = end after n new items

# bad responses and items, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "news", stream = "error" }]
"#;

impl FromOptions for FeedSpout {
    type Options = FeedOptions;
    fn from_options(options: FeedOptions) -> Result<Self, String> {
        FeedSpout::new(options)
    }
}

/// `subreddits` has a serde default (so a missing one is reported by the component's own check, with the
/// expected form), but is required.
fn feed_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["subreddits"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_forgets_the_least_recently_seen() {
        let mut s = Seen::new(3);
        for n in ["t3_a", "t3_b", "t3_c"] {
            s.insert(SmolStr::new(n));
        }
        assert!(s.touch(&SmolStr::new("t3_a")));
        s.insert(SmolStr::new("t3_d"));
        assert!(!s.contains("t3_b"), "b was the least recently seen");
        assert!(s.contains("t3_a") && s.contains("t3_c") && s.contains("t3_d"));
        assert_eq!(s.to_text(), format!("{STATE_HEADER}\nt3_c\nt3_a\nt3_d\n"));
    }

    #[test]
    fn state_file_round_trips_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("submissions-x.seen");
        let mut s = Seen::new(10);
        s.insert(SmolStr::new("t3_abc"));
        s.insert(SmolStr::new("t1_xyz9"));
        write_atomically(&path, &s.to_text()).expect("write");
        let back = Seen::load(&path, 10).expect("load");
        assert_eq!(back.to_text(), s.to_text());
        std::fs::write(&path, "t3_ok\nnot a name\n").expect("write");
        let err = Seen::load(&path, 10).err().expect("a bad line");
        assert!(err.contains("submissions-x.seen:2"), "{err}");
        assert!(err.contains("\"not a name\""), "{err}");
    }

    #[test]
    fn children_map_to_fields_and_bad_ones_say_why() {
        let t1: serde_json::Value = serde_json::json!({"kind": "t1", "data": {
            "id": "k1", "name": "t1_k1", "subreddit": "worldnews", "author": "a",
            "created_utc": 1700000000.0, "score": 3, "permalink": "/r/worldnews/comments/x/y/k1/",
            "body": "hi", "link_title": "T"}});
        let Child::Item(item) = child(&t1) else {
            panic!("a comment")
        };
        assert_eq!(item.fullname, "t1_k1");
        assert_eq!(item.values.len(), FIELDS.len());
        assert_eq!(item.values[4], Value::Null, "a comment has no title");
        assert_eq!(item.values[6], Value::Int(1_700_000_000));
        assert_eq!(item.values[11], Value::from("hi"));
        let more = serde_json::json!({"kind": "more", "data": {"name": "t1_m", "children": []}});
        let Child::Bad { reason, name, .. } = child(&more) else {
            panic!("bad")
        };
        assert!(reason.contains("\"more\""), "{reason}");
        assert_eq!(name.as_deref(), Some("t1_m"));
        let no_title = serde_json::json!({"kind": "t3", "data": {
            "id": "p", "subreddit": "s", "created_utc": 1.0}});
        let Child::Item(item) = child(&no_title) else {
            panic!("an item: only `id` and `created_utc` are required")
        };
        assert_eq!(item.fullname, "t3_p", "`name` derived from `id`");
        assert_eq!(item.values[4], Value::Null, "no title");
        assert_eq!(item.values[10], Value::from("/r/s/comments/p/_/"));
        let cases = [
            (
                serde_json::json!({"kind": "t1", "data": {"created_utc": 1.0}}),
                "t1 child: missing field `name` and `id`",
            ),
            (
                serde_json::json!({"kind": "t1", "data": {"name": "t1_a", "id": "b", "created_utc": 1.0}}),
                "t1 child t1_a: field `id` = \"b\" does not match `name`: expected \"a\"",
            ),
            (
                serde_json::json!({"kind": "t1", "data": {"name": "t3_a", "created_utc": 1.0}}),
                "t1 child: field `name` = \"t3_a\" is not a t1 fullname",
            ),
            (
                serde_json::json!({"kind": "t1", "data": {"id": 7, "created_utc": 1.0}}),
                "t1 child: field `id` = 7: expected a string",
            ),
            (
                serde_json::json!({"kind": "t1", "data": {"id": "a"}}),
                "t1 child t1_a: missing field `created_utc`",
            ),
            (
                serde_json::json!({"kind": "t1", "data": {"id": "a", "created_utc": "yesterday"}}),
                "t1 child t1_a: field `created_utc` = \"yesterday\": expected epoch seconds",
            ),
        ];
        for (c, want) in cases {
            let Child::Bad { reason, .. } = child(&c) else {
                panic!("bad: {c}")
            };
            assert!(reason.starts_with(want), "{reason}");
        }
    }

    #[test]
    fn comment_permalinks_take_the_slug_of_a_reddit_page_of_their_submission() {
        let data = |link_url: &str| serde_json::json!({"subreddit": "AskReddit", "link_id": "t3_4r4inc", "link_url": link_url});
        let self_post = data("https://www.reddit.com/r/AskReddit/comments/4r4inc/serious_to/?x=1");
        assert_eq!(
            comment_permalink(&self_post, "d4y8bdp").as_deref(),
            Some("/r/AskReddit/comments/4r4inc/serious_to/d4y8bdp/")
        );
        for other in [
            "http://i.imgur.com/hMfSaGu.jpg",
            "https://www.reddit.com/r/AskReddit/comments/5jls8a/other_post/",
            "https://notreddit.com/r/AskReddit/comments/4r4inc/serious_to/",
            "https://www.reddit.com/r/AskReddit/comments/4r4inc/",
        ] {
            assert_eq!(
                comment_permalink(&data(other), "d4y8bdp").as_deref(),
                Some("/r/AskReddit/comments/4r4inc/_/d4y8bdp/"),
                "{other}"
            );
        }
        let no_link = serde_json::json!({"subreddit": "AskReddit"});
        assert_eq!(comment_permalink(&no_link, "d4y8bdp"), None);
    }
}
