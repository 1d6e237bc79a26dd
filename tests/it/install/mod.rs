//! On the router: installing, the original script names, the cron jobs, taking over from the
//! original package (scripts/, bin/).

mod operations;
mod setup;
mod upgrade;
mod wrappers;
