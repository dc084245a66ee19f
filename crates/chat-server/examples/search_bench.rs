//! The search benchmark (`scripts/bench-search.sh` runs it in release): fills one room of
//! a fresh database (SQLite in a temp dir, removed at the end, or the empty PostgreSQL
//! given by `--postgres`) with N messages (1,000,000 by default) through the store's own
//! group commit, so the search index is built exactly as a server builds it, then serves
//! that database on a loopback port and times Search calls over gRPC, one at a time, for
//! queries of every selectivity. Prints each kind's p50/p99/max and the index's size and
//! share of the database.
//!
//! The text is a Zipf-distributed vocabulary (a few common English words, then thousands of
//! made-up ones), 4 to 16 words a message, from a fixed seed, so every run searches the
//! same room; a few words are planted for the rare and the never-found queries.
use std::time::{Duration, Instant};

use chat_proto::{chat_service_client::ChatServiceClient, MessageResponse, SearchRequest};
use chat_server::{
    app,
    store::{Database, Durability, MessageStore},
    Config, Shutdown,
};
use clap::Parser;
use tokio::net::TcpListener;

#[derive(Parser)]
struct Args {
    /// Messages in the room.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Timed calls per query kind.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// An empty PostgreSQL database to fill and search instead of a temp SQLite file
    /// (`scripts/bench-search.sh --db postgres` starts one of its own).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

const ROOM: &str = "bench";
/// One message in this many holds the rare word.
const RARE_EVERY: u64 = 50_000;
const RARE: &str = "lighthouse";
const COMMON: [&str; 24] = [
    "the", "and", "to", "of", "a", "i", "you", "it", "in", "is", "that", "for", "on", "we", "this",
    "with", "be", "have", "ok", "so", "but", "not", "what", "just",
];
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "en", "dar", "ix", "pol", "qu", "ber", "an",
    "to",
];
const VOCABULARY: usize = 20_000;

/// splitmix64: a fixed sequence from a fixed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The words by rank, and their cumulative Zipf weights (1/rank).
struct Words {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new() -> Self {
        let mut words: Vec<String> = COMMON.iter().map(|w| w.to_string()).collect();
        let mut taken: std::collections::HashSet<String> = words.iter().cloned().collect();
        let mut n = 0usize;
        while words.len() < VOCABULARY {
            // Words of two to four syllables, numbered through the syllables in turn.
            let mut word = String::new();
            let mut k = n;
            for _ in 0..(2 + n % 3) {
                word.push_str(SYLLABLES[k % SYLLABLES.len()]);
                k /= SYLLABLES.len();
            }
            n += 1;
            if word != RARE && taken.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Words { words, cumulative }
    }

    fn pick(&self, rng: &mut Rng) -> &str {
        let target = rng.unit() * self.cumulative.last().unwrap();
        let at = self.cumulative.partition_point(|&c| c < target);
        &self.words[at.min(self.words.len() - 1)]
    }

    fn message(&self, rng: &mut Rng, id: u64) -> String {
        let len = 4 + rng.below(13) as usize;
        let mut text: Vec<&str> = (0..len).map(|_| self.pick(rng)).collect();
        if id.is_multiple_of(RARE_EVERY) {
            text[len / 2] = RARE;
        }
        text.join(" ")
    }
}

async fn fill(database: &Database, words: &Words, count: u64) -> Duration {
    let store = MessageStore::open(
        database,
        Durability::Normal,
        4,
        |_: &[chat_server::store::Committed]| {},
    )
    .await
    .expect("open the store");
    let mut rng = Rng(0x5eed);
    let started = Instant::now();
    let mut pending = Vec::with_capacity(4000);
    for id in 1..=count {
        let text = words.message(&mut rng, id);
        pending.push(store.append(MessageResponse {
            id,
            room: ROOM.into(),
            username: format!("user{}", rng.below(200)),
            text,
            sent_at_ms: 1_700_000_000_000 + id as i64 * 1000,
            ..Default::default()
        }));
        // The store's queue holds 4,096; a full window waits for its commits.
        if pending.len() == 4000 || id == count {
            for done in futures::future::join_all(pending.drain(..)).await {
                done.expect("append");
            }
            if id % 100_000 < 4000 {
                eprintln!("  {id} messages");
            }
        }
    }
    store.close().await;
    started.elapsed()
}

/// Bytes of the search index (FTS5's tables and the rooms' key index) and of the whole
/// file, from SQLite's dbstat.
fn sqlite_sizes(path: &std::path::Path) -> (u64, u64, u64) {
    let conn = rusqlite::Connection::open(path).expect("open for sizes");
    let of = |filter: &str| -> u64 {
        conn.query_row(
            &format!("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE {filter}"),
            [],
            |row| row.get(0),
        )
        .expect("dbstat")
    };
    (
        of("name LIKE 'message_search%' OR name = 'rooms_by_search_key'"),
        of("name = 'messages'"),
        of("1"),
    )
}

async fn postgres(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// Bytes of the GIN index, of the tsvector column's values (as stored, after any
/// compression), of the messages table with its indexes and TOAST, and of the whole
/// database, from PostgreSQL's own size functions after the server stops.
async fn postgres_sizes(url: &str) -> (u64, u64, u64, u64) {
    let client = postgres(url).await;
    client
        .execute("VACUUM ANALYZE messages", &[])
        .await
        .expect("vacuum");
    let row = client
        .query_one(
            "SELECT pg_relation_size('messages_search'),
                    (SELECT COALESCE(SUM(pg_column_size(search)), 0)::BIGINT FROM messages),
                    pg_total_relation_size('messages'),
                    pg_database_size(current_database())",
            &[],
        )
        .await
        .expect("sizes");
    let at = |i: usize| row.get::<_, i64>(i) as u64;
    (at(0), at(1), at(2), at(3))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("search-bench.db");
    let database = match &args.postgres {
        Some(url) => Database::Postgres(url.clone()),
        None => Database::Sqlite(path.clone()),
    };
    let words = Words::new();

    eprintln!("filling room {ROOM:?} with {} messages", args.messages);
    let took = fill(&database, &words, args.messages).await;
    println!(
        "filled {} messages into {} in {:.1} s ({:.0}/s), through the store",
        args.messages,
        if args.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        took.as_secs_f64(),
        args.messages as f64 / took.as_secs_f64()
    );
    if let Some(url) = &args.postgres {
        // Autovacuum would analyze the filled table within a minute or so; until then the
        // planner has no word statistics and may walk all the room's ids for a rare word.
        let started = Instant::now();
        postgres(url)
            .await
            .execute("ANALYZE messages", &[])
            .await
            .expect("analyze");
        println!(
            "ANALYZE messages took {:.1} s (planner statistics, as autovacuum gathers them)",
            started.elapsed().as_secs_f64()
        );
    }

    let config = Config::parse_from([
        "chat-server",
        "--db",
        match &args.postgres {
            Some(url) => url.as_str(),
            None => path.to_str().expect("a UTF-8 temp path"),
        },
    ]);
    let hub = app::open_hub(&config).await.expect("open the server");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app::serve_hub(listener, config, hub, shutdown.clone()));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect()
        .await
        .expect("connect");
    let mut client = ChatServiceClient::new(channel);

    // (kind, query, pages: how many pages deep each run goes)
    let kinds: Vec<(String, String, usize)> = vec![
        ("rare word".into(), RARE.into(), 1),
        ("common word".into(), words.words[0].clone(), 1),
        ("mid word (rank 1000)".into(), words.words[999].clone(), 1),
        (
            "two common words".into(),
            format!("{} {}", words.words[0], words.words[1]),
            1,
        ),
        (
            "two mid words".into(),
            format!("{} {}", words.words[199], words.words[299]),
            1,
        ),
        (
            "common and rare".into(),
            format!("{} {RARE}", words.words[2]),
            1,
        ),
        ("word never used".into(), "neverusedword".into(), 1),
        (
            "common word, 10 pages deep".into(),
            words.words[5].clone(),
            10,
        ),
    ];
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "query", "calls", "hits", "p50 ms", "p99 ms", "max ms"
    );
    let mut all = Vec::new();
    for (kind, query, pages) in &kinds {
        let mut times = Vec::new();
        let mut hits = 0;
        for _ in 0..args.runs.div_ceil(*pages) {
            let mut before_id = 0;
            for _ in 0..*pages {
                let request = SearchRequest {
                    room: ROOM.into(),
                    query: query.clone(),
                    before_id,
                    limit: 20,
                };
                let started = Instant::now();
                let found = client.search(request).await.expect("search").into_inner();
                times.push(started.elapsed());
                hits = found.hits.len();
                match found.hits.last().and_then(|h| h.message.as_ref()) {
                    Some(last) if found.has_more => before_id = last.id,
                    _ => break,
                }
            }
        }
        times.sort();
        println!(
            "{:<28} {:>6} {:>9} {:>9} {:>9} {:>9}",
            kind,
            times.len(),
            hits,
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "all",
        all.len(),
        "",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().unwrap())
    );

    shutdown.trigger();
    let _ = server.await;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    if let Some(url) = &args.postgres {
        let (index, column, messages, total) = postgres_sizes(url).await;
        let share = |b: u64| 100.0 * b as f64 / total as f64;
        println!(
            "GIN index {:.1} MiB = {:.1}% and tsvector column {:.1} MiB = {:.1}% of the database \
             ({:.1} MiB; the messages table with its indexes and TOAST {:.1} MiB)",
            mib(index),
            share(index),
            mib(column),
            share(column),
            mib(total),
            mib(messages)
        );
        return;
    }
    let (index, messages, total) = sqlite_sizes(&path);
    println!(
        "index {:.1} MiB = {:.1}% of the database ({:.1} MiB; the messages table {:.1} MiB)",
        mib(index),
        100.0 * index as f64 / total as f64,
        mib(total),
        mib(messages)
    );
}
