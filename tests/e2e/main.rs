//! End-to-end tests: the real `valhalla` host with the real built packs, a real database
//! (SQLite file; PostgreSQL when `VALHALLA_TEST_POSTGRES_URL` is set, as `cargo xtask test`
//! does), over real HTTP. `TEST_LOG=valhalla=debug` shows the host's logs.

mod compile_cache;
mod deployment_profile;
mod exports;
mod exports_lifecycle;
mod feature_flags;
mod governance;
mod guard_memo;
mod harness;
mod honeypots;
mod http_basics;
mod metrics;
mod notifications;
mod notifications_mail;
mod notifications_mail_process;
mod notifications_sms;
mod ofrep;
mod openapi;
mod pg_roles;
mod rate_limits;
mod readme_example;
mod reload;
mod requests;
mod retention;
mod route_index;
mod runtime_faults;
mod sandbox;
mod scaffold;
mod scale_out;
mod scheduler;
mod security_actions;
mod security_dashboard;
mod security_policy;
mod startup;
mod system_config;
mod system_log;
mod system_log_paging;
mod tracing;
mod webhook_receiver;
