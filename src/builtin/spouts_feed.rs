//! The `feed` spout as a built-in kind (see [`topo_spouts::feed`]); options checked when the
//! topology file is loaded.

use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{FeedOptions, FeedSpout};

use super::{Checked, TryFromOptions};

impl TryFromOptions<FeedOptions> for FeedSpout {
    fn try_from_options(options: FeedOptions) -> Result<Self, String> {
        FeedSpout::new(options)
    }
}

/// Registers `feed`.
pub(super) fn register(r: &mut Registry) {
    let docs = vec![
        OptionDoc::new(
            "subreddits",
            "list of strings",
            "",
            "subreddits polled, each a source of its own; \"a+b\" is one multireddit (required)",
        ),
        OptionDoc::new(
            "listing",
            "submissions | comments",
            "submissions",
            "/r/{sub}/new.json (t3) or /r/{sub}/comments.json (t1)",
        ),
        OptionDoc::new(
            "base",
            "URL",
            "\"https://www.reddit.com\"",
            "the listing API; with `oauth` the default is \"https://oauth.reddit.com\"",
        ),
        OptionDoc::new("limit", "integer", "100", "items per request, 1 to 100"),
        OptionDoc::new(
            "poll_interval",
            "duration",
            "\"5s\"",
            "wait after a poll that brought new items",
        ),
        OptionDoc::new(
            "max_poll_interval",
            "duration",
            "\"16s\"",
            "polls that bring nothing double the wait up to this",
        ),
        OptionDoc::new(
            "max_backoff",
            "duration",
            "\"2m\"",
            "errors (5xx, network, 429 without Retry-After) double the wait up to this",
        ),
        OptionDoc::new(
            "max_pages",
            "integer",
            "10",
            "requests per poll at most when whole pages are new (bursts, catch-up after a restart)",
        ),
        OptionDoc::new("timeout", "duration", "\"30s\"", "per HTTP request"),
        OptionDoc::new(
            "user_agent",
            "string",
            "\"topo/<version> (by topo stream processing)\"",
            "the User-Agent header; Reddit asks for \"<platform>:<app id>:<version> (by /u/<user>)\"",
        ),
        OptionDoc::new(
            "oauth.client_id",
            "string",
            "",
            "client credentials grant: the application's id (unset `oauth` = anonymous)",
        ),
        OptionDoc::new(
            "oauth.client_secret",
            "string",
            "",
            "the application's secret",
        ),
        OptionDoc::new(
            "oauth.token_url",
            "URL",
            "\"https://www.reddit.com/api/v1/access_token\"",
            "where tokens are requested; refreshed before expiry and on 401",
        ),
        OptionDoc::new(
            "state_dir",
            "path",
            "$TOPO_STATE_DIR or .topo/state, then /<topology>/<component>",
            "where the seen set of each subreddit is kept (written after acks)",
        ),
        OptionDoc::new(
            "max_seen",
            "integer",
            "10000",
            "fullnames remembered per subreddit; the least recently seen are forgotten",
        ),
        OptionDoc::new(
            "skip_existing",
            "bool",
            "false",
            "a first run (no state) marks the current listing seen instead of emitting it",
        ),
        OptionDoc::new(
            "max_items",
            "integer",
            "0",
            "end after this many new items over all tasks (exhausted once acked); 0 = never",
        ),
    ];
    r.register_spout::<Checked<FeedSpout, FeedOptions>, FeedSpout>(
        "feed",
        "new submissions or comments of subreddits from a Reddit-compatible listing API, each once across polls and restarts (seen set written after acks), oldest first; OAuth, rate limits; bad responses to `error`",
        docs,
        |c: &Checked<FeedSpout, FeedOptions>| c.0.clone(),
    );
}
