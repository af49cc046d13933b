//! One module per verb: its flags (`Args`) and a `run` that calls the
//! client and adds context.

pub mod api_resources;
pub mod apply;
pub mod attach;
pub mod certs;
pub mod cluster_info;
pub mod completion;
pub mod config;
pub mod cp;
pub mod create;
pub mod create_data;
pub mod delete;
pub mod describe;
pub mod edit;
pub mod exec;
pub mod explain;
pub mod expose;
pub mod get;
pub mod label;
pub mod logs;
pub mod port_forward;
pub mod replace;
pub mod rolling_update;
pub mod run;
pub mod scale;
pub mod version;
