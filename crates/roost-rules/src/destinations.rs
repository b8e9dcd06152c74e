//! The ENABLED topic rule destinations, as the http action checks them.
//!
//! A copy in memory, so a message costs no query: it is reloaded when the
//! registry's destinations generation has moved, which the registry bumps
//! before the call that changed a destination returns. So the first http
//! action after a DISABLE already sees it (an event alone would leave a
//! window in which a disabled destination still gets messages).

use roost_registry::destinations::covers;
use roost_registry::{Registry, RegistryError};
use std::sync::Arc;
use tokio::sync::Mutex;
use url::Url;

/// The copy and the generation it was read at.
struct View {
    generation: u64,
    enabled: Arc<Vec<Url>>,
}

pub(crate) struct Destinations {
    registry: Registry,
    /// `None` until first read. A tokio mutex: one reload at a time, and
    /// the others wait for it instead of querying too.
    view: Mutex<Option<View>>,
}

impl Destinations {
    pub(crate) fn new(registry: Registry) -> Self {
        Self {
            registry,
            view: Mutex::new(None),
        }
    }

    /// The ENABLED destinations' confirmation URLs, reloaded if stale.
    async fn enabled(&self) -> Result<Arc<Vec<Url>>, RegistryError> {
        let mut view = self.view.lock().await;
        // Read before the query: a change made while it runs moves the
        // generation again, and the next call reloads.
        let generation = self.registry.topic_rule_destinations_generation();
        if let Some(v) = view.as_ref().filter(|v| v.generation == generation) {
            return Ok(v.enabled.clone());
        }
        let urls = self.registry.enabled_topic_rule_destination_urls().await?;
        let enabled: Vec<Url> = urls
            .iter()
            .filter_map(|u| match Url::parse(u) {
                Ok(url) => Some(url),
                Err(e) => {
                    // Checked when stored; a row that no longer parses covers nothing.
                    tracing::warn!(url = %u, error = %e, "a stored topic rule destination URL does not parse; it is ignored");
                    None
                }
            })
            .collect();
        let enabled = Arc::new(enabled);
        *view = Some(View {
            generation,
            enabled: enabled.clone(),
        });
        Ok(enabled)
    }

    /// Reads the destinations again if they changed.
    pub(crate) async fn refresh(&self) -> Result<(), RegistryError> {
        self.enabled().await.map(|_| ())
    }

    /// Whether an ENABLED destination covers `url`.
    pub(crate) async fn allows(&self, url: &Url) -> Result<bool, RegistryError> {
        Ok(self.enabled().await?.iter().any(|c| covers(c, url)))
    }
}
