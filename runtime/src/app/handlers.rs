//! The handlers the mediator calls, erased: those the macros registered and those given
//! to the builder by hand.

use std::any::Any;
use std::marker::PhantomData;

use futures::future::BoxFuture;

use crate::cqrs::mediator::{ErasedCommandHandler, ErasedEventHandler};
use crate::cqrs::{Command, CommandContext, DynCommandHandler, DynEventHandler, EventContext};
use crate::domain::{Envelope, Event};
use crate::error::{Error, Result};
use crate::middleware::Reply;

pub(super) struct StaticCommand(
    pub(super) for<'a> fn(Box<dyn Any + Send>, &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>>,
);

impl ErasedCommandHandler for StaticCommand {
    fn call<'a>(&'a self, cmd: Box<dyn Any + Send>, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>> {
        (self.0)(cmd, ctx)
    }
}

pub(super) struct HandCommand<C, H>(pub(super) H, pub(super) PhantomData<fn(C)>);

impl<C: Command, H: DynCommandHandler<C>> ErasedCommandHandler for HandCommand<C, H> {
    fn call<'a>(&'a self, cmd: Box<dyn Any + Send>, ctx: &'a mut CommandContext) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            let cmd = cmd
                .downcast::<C>()
                .map_err(|_| Error::handler(format!("handler of `{}` received another message type", C::NAME)))?;
            let r = self.0.handle(*cmd, ctx).await?;
            Ok(Box::new(r) as Reply)
        })
    }
}

pub(super) struct StaticEvent(
    pub(super) for<'a> fn(&'a (dyn Any + Send + Sync), &'a EventContext) -> BoxFuture<'a, Result<()>>,
);

impl ErasedEventHandler for StaticEvent {
    fn call<'a>(&'a self, envelope: &'a (dyn Any + Send + Sync), ctx: &'a EventContext) -> BoxFuture<'a, Result<()>> {
        (self.0)(envelope, ctx)
    }
}

pub(super) struct HandEvent<E, H>(pub(super) H, pub(super) PhantomData<fn(E)>);

impl<E: Event, H: DynEventHandler<E>> ErasedEventHandler for HandEvent<E, H> {
    fn call<'a>(&'a self, envelope: &'a (dyn Any + Send + Sync), ctx: &'a EventContext) -> BoxFuture<'a, Result<()>> {
        match envelope.downcast_ref::<Envelope<E>>() {
            Some(env) => self.0.handle(env, ctx),
            None => {
                Box::pin(async { Err(Error::handler(format!("handler of `{}` received another event type", E::NAME))) })
            }
        }
    }
}
