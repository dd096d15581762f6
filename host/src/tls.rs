//! TLS set-up shared by every outbound client.
//!
//! reqwest is built without a bundled crypto provider so the binary carries one
//! (ring) chosen here, once per process.

/// Installs ring as the process-wide rustls provider; later calls do nothing.
pub fn install_default_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
