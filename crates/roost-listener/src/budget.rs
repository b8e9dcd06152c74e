//! The process's file descriptors, divided between its listeners.
//!
//! Every socket, database file and log file of the process comes from one
//! table of `RLIMIT_NOFILE` entries. Without a division, a flood of idle
//! connections on one port (the control plane's, say) takes every free
//! descriptor and new devices cannot connect. So: a reserve stays for what
//! is not a listener's connection (database files, logs, outbound
//! deliveries, accepted sockets being refused), the side listeners (device
//! HTTPS, the control plane) may each take at most an eighth of the rest,
//! and MQTT, the port devices live on, may take what remains.

/// How many descriptors each listener may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerShares {
    /// MQTT (TLS and, for development, plain).
    pub mqtt: usize,
    /// Device HTTPS publish.
    pub https: usize,
    /// The control plane (API, metrics).
    pub api: usize,
}

/// The descriptor table's size, and how it is divided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorBudget {
    limit: u64,
}

/// The least kept back for everything that is not a listener's connection.
const MIN_RESERVE: u64 = 64;

impl DescriptorBudget {
    /// Raises the process's soft limit on open files to its hard limit (as
    /// servers do: the soft limit is often a small default) and budgets
    /// what that gives.
    pub fn of_process() -> Self {
        let limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or raise the open-files limit; assuming 1024");
                1024
            }
        };
        Self::with_limit(limit)
    }

    pub fn with_limit(limit: u64) -> Self {
        Self { limit }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Descriptors kept for what is not a listener's connection.
    pub fn reserve(&self) -> u64 {
        (self.limit / 16).max(MIN_RESERVE).min(self.limit / 2)
    }

    /// The caps to use: each listener's wanted cap, lowered to its share.
    pub fn shares(&self, wanted: ListenerShares) -> ListenerShares {
        let usable = usize::try_from(self.limit - self.reserve()).unwrap_or(usize::MAX);
        let side = usable / 8;
        let https = wanted.https.min(side).max(1);
        let api = wanted.api.min(side).max(1);
        ListenerShares {
            mqtt: wanted.mqtt.min(usable.saturating_sub(https + api)).max(1),
            https,
            api,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANTED: ListenerShares = ListenerShares {
        mqtt: 20_000,
        https: 1_024,
        api: 256,
    };

    #[test]
    fn a_small_table_keeps_room_for_devices() {
        let shares = DescriptorBudget::with_limit(1024).shares(WANTED);
        assert_eq!(shares.api, 120);
        assert_eq!(shares.https, 120);
        assert_eq!(shares.mqtt, 720);
        assert!(shares.mqtt + shares.https + shares.api <= 1024 - 64);
    }

    #[test]
    fn a_large_table_gives_every_listener_what_it_wants() {
        let shares = DescriptorBudget::with_limit(1 << 20).shares(WANTED);
        assert_eq!(shares, WANTED);
    }

    #[test]
    fn the_shares_never_exceed_the_table_less_its_reserve() {
        for limit in [8, 64, 100, 1024, 4096, 65_536] {
            let budget = DescriptorBudget::with_limit(limit);
            let s = budget.shares(WANTED);
            let total = (s.mqtt + s.https + s.api) as u64;
            assert!(
                total <= (limit - budget.reserve()).max(3),
                "limit {limit}: {s:?}"
            );
        }
    }
}
