//! A line on stderr once a second, so a long run shows it is alive and how fast it goes;
//! stdout stays for the final report.
use std::{sync::Arc, time::Instant};

use tokio::{task::JoinHandle, time};
use tokio_util::sync::CancellationToken;

use crate::{report::grouped, tally::Tally};

/// Prints until `stop` fires.
pub fn spawn(
    target: String,
    subscribers: usize,
    tally: Arc<Tally>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = time::interval(time::Duration::from_secs(1));
        tick.tick().await;
        let (mut sent, mut delivered) = (0, 0);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let (s, d) = (tally.sent(), tally.delivered());
            eprintln!(
                "[{target} {:>3}s] connected {}/{subscribers}  sent {} (+{}/s)  \
                 delivered {} (+{}/s)  send errors {}  ended {}",
                start.elapsed().as_secs(),
                tally.connected(),
                grouped(s),
                grouped(s - sent),
                grouped(d),
                grouped(d - delivered),
                tally.send_errors(),
                tally.ended(),
            );
            (sent, delivered) = (s, d);
        }
    })
}
