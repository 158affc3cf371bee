//! The connection-table thread: the passes that read the whole table (an
//! ageing pass, `lbctl flows`) run here, on a handle of their own on the
//! pinned map, so that the controller, and every `lbctl` request and scrape
//! queued behind it, never waits for a walk of a million flows (about a
//! second with deletions).

use std::{sync::mpsc, thread::JoinHandle};

use tokio::sync::oneshot;

use super::Event;
use crate::{
    admin::Response,
    ageing::{self, AgeingPlan, Timeouts},
    balancer::{AgeingContext, monotonic_now_ns},
    control::FlowView,
    dataplane::{DataplaneError, FlowTable},
};

/// What the table thread is asked to do.
pub(super) enum TableJob {
    /// Read the table, delete idle flows and report what is left
    /// (`Event::Aged`); `context` goes back with it.
    Age {
        timeouts: Timeouts,
        context: AgeingContext,
    },
    /// `lbctl flows`: answered from here.
    Flows {
        view: FlowView,
        reply: oneshot::Sender<Response>,
    },
}

/// The controller's handle on the thread; dropping it ends the thread.
pub(super) struct TableThread {
    jobs: mpsc::Sender<TableJob>,
    thread: JoinHandle<()>,
    /// An ageing pass is under way (at most one at a time).
    ageing: bool,
}

impl TableThread {
    pub(super) fn start(table: FlowTable, events: mpsc::Sender<Event>) -> std::io::Result<Self> {
        let (jobs, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("table".into())
            .spawn(move || run(table, &inbox, &events))?;
        Ok(Self {
            jobs,
            thread,
            ageing: false,
        })
    }

    /// Starts an ageing pass unless one is under way.
    pub(super) fn age(&mut self, timeouts: Timeouts, context: AgeingContext) {
        if !self.ageing && self.jobs.send(TableJob::Age { timeouts, context }).is_ok() {
            self.ageing = true;
        }
    }

    /// The pass started by [`TableThread::age`] has been reported.
    pub(super) fn aged(&mut self) {
        self.ageing = false;
    }

    /// Answers `lbctl flows` from the thread.
    pub(super) fn flows(&self, view: FlowView, reply: oneshot::Sender<Response>) {
        if let Err(mpsc::SendError(TableJob::Flows { reply, .. })) =
            self.jobs.send(TableJob::Flows { view, reply })
        {
            let _ = reply.send(Response::failure("lbd is shutting down"));
        }
    }

    /// Ends the thread (after the job at hand).
    pub(super) fn stop(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

fn run(mut table: FlowTable, inbox: &mpsc::Receiver<TableJob>, events: &mpsc::Sender<Event>) {
    for job in inbox {
        match job {
            TableJob::Age { timeouts, context } => {
                let result = age(&mut table, &timeouts).map(Box::new);
                if events.send(Event::Aged(result, context)).is_err() {
                    return;
                }
            }
            TableJob::Flows { view, reply } => {
                let flows = table.flows().and_then(|mut flows| {
                    flows.extend(table.half_open_flows()?);
                    Ok(flows)
                });
                let response = match flows {
                    Ok(flows) => Response::success(view.entries(flows, monotonic_now_ns())),
                    Err(e) => Response::failure(format!("reading the connection table: {e}")),
                };
                let _ = reply.send(response);
            }
        }
    }
}

/// The table half of an ageing pass: read, plan, delete the expired flows
/// (of both tables).
fn age(table: &mut FlowTable, timeouts: &Timeouts) -> Result<AgeingPlan, DataplaneError> {
    let plan = ageing::plan_tables(
        monotonic_now_ns(),
        table.flows()?,
        table.half_open_flows()?,
        timeouts,
    );
    for key in &plan.expired {
        table.remove(key)?;
    }
    for key in &plan.expired_half_open {
        table.remove_half_open(key)?;
    }
    Ok(plan)
}
