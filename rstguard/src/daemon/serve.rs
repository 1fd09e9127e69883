//! The serving loop: spawns the daemon's tasks (metrics, events, the
//! sweeper), then each second runs auto mode, samples causes, prints
//! summaries and publishes the state, until a signal stops it or a task
//! dies. Every task is supervised: one that returns or panics is logged
//! and stops the daemon with an error (which detaches everything, as a
//! normal stop does: fail open).

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::task::{Id, JoinError, JoinSet};
use tracing::{error, info, warn};

use super::{
    causes, events, lock, metrics,
    reload::reload,
    signals::{Request, Signals},
    startup::Ring,
    summary::report,
    sweep, Shared,
};
use crate::{
    attach::Attachment, cli::AttachArgs, config::Settings, host::paths::PinDir, socket::LocalAddrs,
};

/// What the serving loop works with.
pub struct Context<'a> {
    pub args: &'a AttachArgs,
    pub pins: &'a PinDir,
    pub shared: &'a Arc<Mutex<Shared>>,
    pub attachments: &'a [Attachment],
}

/// The daemon's long-running tasks, by name.
struct Tasks {
    set: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, &'static str>,
}

impl Tasks {
    fn new() -> Tasks {
        Tasks {
            set: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    fn spawn(
        &mut self,
        name: &'static str,
        task: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Waits for the first task to end (they are meant to run forever), and
    /// says which one ended, and how.
    async fn died(&mut self) -> anyhow::Error {
        let (id, how) = match self.set.join_next_with_id().await {
            Some(Ok((id, Ok(())))) => (id, "it returned".to_string()),
            Some(Ok((id, Err(e)))) => (id, format!("{e:#}")),
            Some(Err(e)) => (e.id(), panic_text(&e)),
            None => return std::future::pending().await,
        };
        let name = self.names.get(&id).copied().unwrap_or("a");
        anyhow::anyhow!("the {name} task stopped ({how}): detaching")
    }

    /// Stops every task and waits for them.
    async fn drain(mut self) {
        self.set.shutdown().await;
    }
}

fn panic_text(e: &JoinError) -> String {
    if e.is_cancelled() {
        return "cancelled".into();
    }
    "it panicked".into()
}

pub async fn serve(
    cx: Context<'_>,
    mut settings: Settings,
    metrics: Option<TcpListener>,
    ring: Option<Ring>,
    mut signals: Signals,
) -> anyhow::Result<()> {
    let Context {
        args,
        pins,
        shared,
        attachments,
    } = cx;
    let mut tasks = Tasks::new();
    if let Some(l) = metrics {
        tasks.spawn("metrics", metrics::serve(l, Arc::clone(shared)));
    }
    if let Some((r, budget)) = ring {
        tasks.spawn(
            "events",
            events::run(
                r,
                budget,
                events::per_tick(settings.event_budget),
                Arc::clone(shared),
                settings.log_events_per_sec,
            ),
        );
    }
    tasks.spawn("sweeper", sweep::run(pins.clone(), Arc::clone(shared)));

    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.tick().await;
    let clock = std::time::Instant::now();
    lock(shared).control(0.0);
    let mut seconds = 0u64;
    let mut vanished: Vec<String> = Vec::new();
    let result = loop {
        tokio::select! {
            request = signals.next() => match request {
                Request::Stop(name) => { info!("{name}: detaching"); break Ok(()); }
                Request::Reload => reload(args, &mut settings, shared),
            },
            e = tasks.died() => {
                error!(error = %e, "a daemon task died");
                break Err(e);
            }
            _ = second.tick() => {
                seconds += 1;
                each_second(shared, attachments, &settings, seconds, clock.elapsed().as_secs_f64(), &mut vanished);
            }
        }
    };
    tasks.drain().await;
    result
}

/// One second of the serving loop.
fn each_second(
    shared: &Mutex<Shared>,
    attachments: &[Attachment],
    settings: &Settings,
    seconds: u64,
    now: f64,
    vanished: &mut Vec<String>,
) {
    for a in attachments {
        if !a.iface.still_exists() && !vanished.contains(&a.iface.name) {
            error!(iface = %a.iface.name, "interface vanished: the kernel removed rstguard's programs with it");
            vanished.push(a.iface.name.clone());
            lock(shared).attached.retain(|v| v.name != a.iface.name);
        }
    }
    let mut s = lock(shared);
    // Addresses come and go: socket mode follows them within a second
    // (until then, RSTs to a new one are tracked).
    if let Some(Err(e)) = s.local.as_mut().map(LocalAddrs::refresh) {
        warn!(error = %e, "socket mode: refreshing this host's addresses failed");
    }
    s.control(now);
    if seconds.is_multiple_of(causes::SAMPLE_SECS) {
        s.sample_causes(seconds);
    }
    if settings.interval > 0 && seconds.is_multiple_of(settings.interval) {
        report(&s.maps, attachments, settings.json);
    }
    s.publish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn died(spawn: impl FnOnce(&mut Tasks)) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut tasks = Tasks::new();
            tasks.spawn("forever", std::future::pending());
            spawn(&mut tasks);
            let e = tasks.died().await;
            tasks.drain().await;
            e.to_string()
        })
    }

    #[test]
    fn a_task_that_dies_is_named_with_how() {
        assert_eq!(
            died(|t| t.spawn("events", async { anyhow::bail!("the ring broke") })),
            "the events task stopped (the ring broke): detaching"
        );
        assert_eq!(
            died(|t| t.spawn("sweeper", async { panic!("a bug") })),
            "the sweeper task stopped (it panicked): detaching"
        );
        assert_eq!(
            died(|t| t.spawn("metrics", async { Ok(()) })),
            "the metrics task stopped (it returned): detaching"
        );
    }
}
