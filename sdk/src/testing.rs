//! A stand-in for droid, so plugin logic is unit-tested natively with `cargo test`.
//!
//! Inside droid, the SDK's functions ([`config`](crate::config),
//! [`http`](crate::http), [`log`](crate::log), [`clock`](crate::clock)) call the
//! host. In a native test they call the [`TestHost`] installed on the current
//! thread instead: configure it with config values, a clock and canned HTTP
//! answers, run the plugin through it, then look at the logs and requests it saw.
//! droid's own rules apply, by the same code (`droid-rules`): requests outside
//! the base URL and host-owned headers are denied as droid denies them, and a
//! transformer's changes are checked as droid checks them (key, own tenant).
//!
//! ```
//! use droid_sdk::testing::TestHost;
//! use droid_sdk::{Adapter, FetchOutcome, FetchRequest, PluginError, http};
//!
//! struct Echo;
//! impl Adapter for Echo {
//!     fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
//!         let response = http::get(http::url_for_key(&req.key))?;
//!         Ok(match response.status {
//!             404 => FetchOutcome::NotFound,
//!             _ => FetchOutcome::Found(droid_sdk::Fetched::body(response.text()?)),
//!         })
//!     }
//! }
//!
//! let host = TestHost::new()
//!     .base_url("http://store.test/items")
//!     .respond("http://store.test/items/a%20b", 200, r#"{"n":1}"#);
//! let outcome = host.fetch::<Echo>("items", "a b", "acme").unwrap();
//! assert!(matches!(outcome, FetchOutcome::Found(e) if e.body == r#"{"n":1}"#));
//! assert_eq!(host.requests()[0].url, "http://store.test/items/a%20b");
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use droid_rules::egress::EgressPolicy;

use crate::http::{HttpError, Request, Response};
use crate::log::Level;
use crate::types::{EntityOp, FetchOutcome, FetchRequest, PluginError, SourceEvent};
use crate::{Adapter, Transformer};

thread_local! {
    static CURRENT: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

/// Runs `f` against the host installed on this thread.
pub(crate) fn with_current<R>(f: impl FnOnce(&Inner) -> R) -> R {
    let host = CURRENT.with(|c| c.borrow().clone()).expect(
        "droid_sdk: no host here; plugin functions run inside droid, or in tests inside droid_sdk::testing::TestHost",
    );
    f(&host)
}

/// A native stand-in for droid's host imports.
#[derive(Debug, Default, Clone)]
pub struct TestHost {
    inner: Rc<Inner>,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    config: RefCell<BTreeMap<String, String>>,
    base_url: RefCell<String>,
    now_ms: RefCell<u64>,
    routes: RefCell<Vec<(String, Result<Response, HttpError>)>>,
    requests: RefCell<Vec<Request>>,
    logs: RefCell<Vec<(Level, String)>>,
}

impl TestHost {
    /// A host with no config values, base URL `http://backing-store.test`, clock at zero.
    pub fn new() -> Self {
        let host = Self::default();
        *host.inner.base_url.borrow_mut() = "http://backing-store.test".to_owned();
        host
    }

    /// Sets a config value.
    pub fn config(self, name: &str, value: &str) -> Self {
        self.inner
            .config
            .borrow_mut()
            .insert(name.to_owned(), value.to_owned());
        self
    }

    /// Sets the record type's base URL.
    pub fn base_url(self, url: &str) -> Self {
        *self.inner.base_url.borrow_mut() = url.trim_end_matches('/').to_owned();
        self
    }

    /// Sets the clock.
    pub fn now_ms(self, now: u64) -> Self {
        *self.inner.now_ms.borrow_mut() = now;
        self
    }

    /// Answers requests for exactly `url` with `status` and `body`.
    pub fn respond(self, url: &str, status: u16, body: &str) -> Self {
        let response = Response {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.as_bytes().to_vec(),
        };
        self.inner
            .routes
            .borrow_mut()
            .push((url.to_owned(), Ok(response)));
        self
    }

    /// Fails requests for exactly `url` with `error`.
    pub fn fail(self, url: &str, error: HttpError) -> Self {
        self.inner
            .routes
            .borrow_mut()
            .push((url.to_owned(), Err(error)));
        self
    }

    /// Runs `f` with this host installed on the current thread.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Rc<Inner>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| *c.borrow_mut() = self.0.take());
            }
        }
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.inner.clone()));
        let _restore = Restore(previous);
        f()
    }

    /// Calls adapter `A` as droid would on a cache miss.
    pub fn fetch<A: Adapter>(
        &self,
        record_type: &str,
        key: &str,
        tenant: &str,
    ) -> Result<FetchOutcome, PluginError> {
        self.run(|| {
            A::fetch(FetchRequest {
                record_type: record_type.to_owned(),
                key: key.to_owned(),
                tenant: tenant.to_owned(),
            })
        })
    }

    /// Calls transformer `T` on a batch, exactly as the component export does,
    /// then checks each event's changes as droid does: an event whose changes
    /// droid would refuse (a key it does not accept, another tenant's record)
    /// comes back as an [`PluginError::Internal`] saying why.
    pub fn transform<T: Transformer>(
        &self,
        events: Vec<SourceEvent>,
    ) -> Vec<Result<Vec<EntityOp>, PluginError>> {
        let tenants: Vec<String> = events.iter().map(|e| e.tenant.clone()).collect();
        let results = self.run(|| crate::transform_batch::<T>(events));
        results
            .into_iter()
            .zip(tenants)
            .map(|(result, tenant)| {
                let ops = result?;
                match ops.iter().try_for_each(|op| check_op(op, &tenant)) {
                    Ok(()) => Ok(ops),
                    Err(why) => Err(PluginError::Internal(format!(
                        "droid would refuse this event: {why}"
                    ))),
                }
            })
            .collect()
    }

    /// Every request the plugin sent, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.requests.borrow().clone()
    }

    /// Every line the plugin logged, in order.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.inner.logs.borrow().clone()
    }
}

/// Checks one change of an event of `tenant` as droid's ingestion does.
fn check_op(op: &EntityOp, tenant: &str) -> Result<(), String> {
    let (key, op_tenant, version) = match op {
        EntityOp::Upsert(entity) => (&entity.key, &entity.tenant, entity.version),
        EntityOp::Delete(reference) => (&reference.key, &reference.tenant, reference.version),
    };
    droid_rules::change::check(key, op_tenant, version, tenant)
}

impl Inner {
    pub(crate) fn record_log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    pub(crate) fn now_ms(&self) -> u64 {
        *self.now_ms.borrow()
    }

    pub(crate) fn config_get(&self, name: &str) -> Option<String> {
        self.config.borrow().get(name).cloned()
    }

    pub(crate) fn config_names(&self) -> Vec<String> {
        self.config.borrow().keys().cloned().collect()
    }

    pub(crate) fn base_url(&self) -> String {
        self.base_url.borrow().clone()
    }

    pub(crate) fn http_send(&self, request: Request) -> Result<Response, HttpError> {
        self.requests.borrow_mut().push(request.clone());
        let base = self.base_url.borrow().clone();
        let base = url::Url::parse(&base).map_err(|e| {
            HttpError::Denied(format!("the test's base URL {base:?} is not a URL: {e}"))
        })?;
        let policy = EgressPolicy::new(base);
        policy.check_url(&request.url).map_err(HttpError::Denied)?;
        for (name, _) in &request.headers {
            policy.check_header(name).map_err(HttpError::Denied)?;
        }
        self.routes
            .borrow()
            .iter()
            .find(|(url, _)| *url == request.url)
            .map(|(_, answer)| answer.clone())
            .unwrap_or_else(|| {
                Err(HttpError::Connect(format!(
                    "TestHost has no answer for {}",
                    request.url
                )))
            })
    }
}
