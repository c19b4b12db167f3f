//! What every connection of one simulator shares: the configuration, ephemeral keys, open
//! calls, the connection log, the shutdown signal and the id allocator.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::SimConfig;
use crate::handshake::ConnectionInfo;

/// What a number from [`IdAllocator`] is for. Each space counts on its own, and the space is
/// part of the number, so a session's seed never equals a minted key's or a call's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdSpace {
    /// A simulated session's seed (its `sess_…`, `item_…`, `event_…` ids).
    Session,
    /// The session a minted ephemeral key describes.
    Secret,
    /// An open call's `rtc_…` id.
    Call,
}

impl IdSpace {
    /// The top byte of the space's numbers.
    fn tag(self) -> u64 {
        match self {
            Self::Session => 0,
            Self::Secret => 1,
            Self::Call => 2,
        }
    }
}

/// Hands out numbers, 1, 2, 3 … within each [`IdSpace`].
#[derive(Debug, Default)]
pub(crate) struct IdAllocator {
    sessions: AtomicU64,
    secrets: AtomicU64,
    calls: AtomicU64,
}

impl IdAllocator {
    pub(crate) fn next(&self, space: IdSpace) -> u64 {
        let counter = match space {
            IdSpace::Session => &self.sessions,
            IdSpace::Secret => &self.secrets,
            IdSpace::Call => &self.calls,
        };
        let n = counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & ((1 << 56) - 1);
        (space.tag() << 56) | n
    }
}

/// An ephemeral key and the session configuration it carries.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub(crate) expires: Instant,
    pub(crate) session: Value,
    /// The size of `session` as JSON, for the store's cap.
    pub(crate) bytes: usize,
}

pub(crate) struct Shared {
    pub(crate) config: Arc<SimConfig>,
    pub(crate) ids: IdAllocator,
    /// The latest [`crate::CONNECTION_LOG`] handshakes.
    pub(crate) connections: Mutex<VecDeque<ConnectionInfo>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Ephemeral keys minted by `POST /v1/realtime/client_secrets`.
    pub(crate) secrets: Mutex<HashMap<String, Secret>>,
    /// Open calls (`rtc_…`): the signal that hangs them up, and where sidebands attach.
    pub(crate) calls: Mutex<HashMap<String, Call>>,
    /// A recording to replay instead of simulating.
    pub(crate) replay: Option<Arc<Vec<crate::replay::Entry>>>,
    /// WebRTC calls answered and not yet over (capped at `max_connections`).
    #[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
    pub(crate) rtc_calls: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// How many sideband messages (attachments, client events) may wait for a call's session.
const SIDEBAND_INBOX: usize = 64;

/// What a sideband session (`/v1/realtime?call_id=`) hands to the session of the call it
/// attached to.
#[derive(Debug)]
pub(crate) enum Sideband {
    /// A sideband attached: the call's server events go to `events` from now on, after a
    /// `session.created` of its own. Dropping the receiver detaches it.
    Attach { events: mpsc::Sender<String> },
    /// A client event the sideband sent, as text (applied as if the call's client sent it).
    Text(String),
}

/// An open call.
#[derive(Debug)]
pub(crate) struct Call {
    hangup: watch::Sender<bool>,
    /// Where sidebands attach, when this simulator runs the call's session (a WebRTC call).
    sideband: Option<mpsc::Sender<Sideband>>,
    /// The other end, until the call's session takes it.
    inbox: Option<mpsc::Receiver<Sideband>>,
}

/// Locks `mutex`, also after a panic elsewhere held it: the maps stay usable (each update is
/// one insert or remove), and one failed task must not take the server down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        config: SimConfig,
        shutdown: watch::Receiver<bool>,
        replay: Option<Vec<crate::replay::Entry>>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            ids: IdAllocator::default(),
            connections: Mutex::new(VecDeque::new()),
            shutdown,
            secrets: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            replay: replay.map(Arc::new),
            rtc_calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Logs a handshake, forgetting the oldest past [`crate::CONNECTION_LOG`].
    pub(crate) fn remember(&self, info: ConnectionInfo) {
        let mut connections = lock(&self.connections);
        if connections.len() >= crate::CONNECTION_LOG {
            connections.pop_front();
        }
        connections.push_back(info);
    }

    /// The session of an unexpired ephemeral key.
    pub(crate) fn secret(&self, key: &str) -> Option<Secret> {
        lock(&self.secrets)
            .get(key)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Opens a call without a session of its own (a stand-in for SIP: each sideband
    /// session to it is a session of its own) and returns its id.
    pub(crate) fn open_call(&self) -> String {
        self.open(false)
    }

    /// Opens a call whose session this simulator runs (WebRTC): sidebands attach to that
    /// session ([`Shared::sideband`]), which takes their messages ([`Shared::take_inbox`]).
    #[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
    pub(crate) fn open_hosted_call(&self) -> String {
        self.open(true)
    }

    fn open(&self, hosted: bool) -> String {
        let id = format!("rtc_{:032x}", self.ids.next(IdSpace::Call));
        let (hangup, _) = watch::channel(false);
        let (sideband, inbox) = if hosted {
            let (tx, rx) = mpsc::channel(SIDEBAND_INBOX);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        lock(&self.calls).insert(
            id.clone(),
            Call {
                hangup,
                sideband,
                inbox,
            },
        );
        id
    }

    /// The hang-up signal of an open call.
    pub(crate) fn call(&self, id: &str) -> Option<watch::Receiver<bool>> {
        lock(&self.calls)
            .get(id)
            .map(|call| call.hangup.subscribe())
    }

    /// Where a sideband session attaches to an open call's session; `None` for a call
    /// without one (or no such call).
    pub(crate) fn sideband(&self, id: &str) -> Option<mpsc::Sender<Sideband>> {
        lock(&self.calls).get(id)?.sideband.clone()
    }

    /// The sideband messages of an open call, for its session (once).
    pub(crate) fn take_inbox(&self, id: &str) -> Option<mpsc::Receiver<Sideband>> {
        lock(&self.calls).get_mut(id)?.inbox.take()
    }

    /// Ends a call: its sessions close. Whether it was open.
    pub(crate) fn hang_up(&self, id: &str) -> bool {
        match lock(&self.calls).remove(id) {
            Some(call) => {
                let _ = call.hangup.send(true);
                true
            }
            None => false,
        }
    }
}

/// `expires_at` of something starting now and lasting `duration`: Unix seconds, saturating
/// (what never expires says the year 9999).
pub(crate) fn expires_at(duration: Duration) -> i64 {
    const NEVER: i64 = 253_402_300_799;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(now.saturating_add(duration.as_secs()))
        .unwrap_or(NEVER)
        .min(NEVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_spaces_count_apart_and_never_meet() {
        let ids = IdAllocator::default();
        assert_eq!(ids.next(IdSpace::Session), 1);
        assert_eq!(ids.next(IdSpace::Session), 2);
        let secret = ids.next(IdSpace::Secret);
        let call = ids.next(IdSpace::Call);
        assert_eq!(secret & 0xff, 1);
        assert_eq!(call & 0xff, 1);
        assert!(secret != 1 && call != 1 && secret != call);
        assert_eq!(ids.next(IdSpace::Session), 3);
    }
}
