//! Prometheus metrics, shared by the API and worker processes: one recorder per process.
//! The queue gauges are the operators' (`ops::metrics`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds: from a fast GraphQL call to a delivery that waited for retries.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 1800.0,
];

/// Installs the process's metrics recorder (once) and returns its handle; `None` if another
/// recorder was installed first.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        "ticketing_graphql_requests_total",
        "GraphQL requests by operation name"
    );
    metrics::describe_counter!(
        "ticketing_graphql_errors_total",
        "GraphQL requests that answered with errors, by operation and code"
    );
    metrics::describe_histogram!(
        "ticketing_graphql_request_duration_seconds",
        "GraphQL request latency by operation name"
    );
    metrics::describe_counter!(
        "ticketing_jobs_total",
        "Jobs handled by the worker, by kind and outcome"
    );
    metrics::describe_counter!(
        "ticketing_live_events_gaps_total",
        "Times the PostgreSQL listener lost its connection (events sent meanwhile were missed; the key cache is cleared)"
    );
    metrics::describe_counter!(
        "ticketing_retention_deleted_total",
        "Rows deleted by retention, by kind (jobs, conversations)"
    );
    metrics::describe_counter!(
        "ticketing_deliveries_swept_total",
        "Unfinished deliveries the sweep found without a job: requeued (a new job) or failed (the job died)"
    );
    metrics::describe_counter!(
        "ticketing_webhooks_swept_total",
        "Unfinished webhook deliveries the sweep found without a live job, by what it did"
    );
    metrics::describe_counter!(
        "ticketing_tickets_swept_total",
        "Unrouted tickets the sweep found without a live routing job and gave a new one"
    );
    metrics::describe_histogram!(
        "ticketing_delivery_latency_seconds",
        "From a ticket being opened to its e-mail being accepted by the SMTP server"
    );
    metrics::describe_histogram!(
        "ticketing_shared_write_jobs",
        "Routing jobs whose write went into one shared statement, per statement, by kind (plan, record, publish)"
    );
    metrics::describe_gauge!(
        "ticketing_deliveries",
        "Deliveries by status (all accounts)"
    );
    metrics::describe_gauge!("ticketing_jobs", "Queue jobs by status");
    metrics::describe_gauge!(
        "ticketing_oldest_pending_delivery_age_seconds",
        "Age of the oldest delivery waiting for its first attempt (0 when none waits)"
    );
    metrics::describe_gauge!(
        "ticketing_backlog_accounts",
        "Accounts with work waiting (tickets not yet routed, e-mail deliveries not finished)"
    );
    metrics::describe_gauge!(
        "ticketing_backlog_tickets",
        "Tickets waiting for routing, all accounts"
    );
    metrics::describe_gauge!(
        "ticketing_backlog_largest_account",
        "Work waiting (tickets and deliveries) of the account with the most; the accounts are listed in queueStats and /ops"
    );
}

/// Renders every metric of the process in the Prometheus text format (empty when another
/// recorder was installed first).
pub fn render() -> String {
    prometheus()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}
