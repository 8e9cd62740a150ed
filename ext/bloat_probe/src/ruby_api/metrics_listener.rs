//! BloatProbe::MetricsListener: the native /metrics listener (see metrics_listener.rs);
//! BloatProbe::MetricsServer renders the text for it on a Ruby thread.

use super::errors::{io_error, range_error};
use super::nogvl::without_gvl;
use bloat_probe_metrics_listener::Listener;
use magnus::{function, method, prelude::*, Error, RModule, Ruby};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[magnus::wrap(class = "BloatProbe::MetricsListener", free_immediately, size)]
pub struct MetricsListener {
    listener: Listener,
}

impl MetricsListener {
    fn start(ruby: &Ruby, bind: String, port: u16, content_type: String, body: String) -> Result<Self, Error> {
        Listener::start(&bind, port, &content_type, body)
            .map(|listener| MetricsListener { listener })
            .map_err(|e| io_error(ruby, &format!("listening on {bind}:{port}"), e))
    }

    /// The count of scrapes to publish fresh figures for, or nil after `timeout` seconds.
    /// Waits without the GVL; Thread#kill and Ctrl-C end it.
    fn wait_for_scrape(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<Option<u64>, Error> {
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| range_error(ruby, format!("timeout must be 0 or more seconds, got {timeout}")))?;
        let cancel = AtomicBool::new(false);
        without_gvl(ruby, &cancel, || rb_self.listener.wait_for_scrape(timeout, &cancel))
    }

    fn publish(&self, body: String, asked: u64) {
        self.listener.publish(body, asked);
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().port()
    }

    fn stop(&self) {
        self.listener.stop();
    }
}

pub fn define(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("MetricsListener", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_singleton_method("start", function!(MetricsListener::start, 4))?;
    class.define_method("wait_for_scrape", method!(MetricsListener::wait_for_scrape, 1))?;
    class.define_method("publish", method!(MetricsListener::publish, 2))?;
    class.define_method("port", method!(MetricsListener::port, 0))?;
    class.define_method("stop", method!(MetricsListener::stop, 0))?;
    Ok(())
}
