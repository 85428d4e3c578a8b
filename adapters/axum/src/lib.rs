//! HTTP for cqrs-ddd on axum.

mod api;
pub mod context;
pub mod extract;
pub mod health;
pub mod jwt;
pub mod messages;
pub mod openapi;
pub mod problem;
pub mod read_model;

pub use api::Api;
pub use context::{AuthConfig, Claims, ContextLayer, ContextService};
pub use extract::{Application, Cmd, Context};
pub use jwt::{JwtConfig, JwtConfigError, TokenError};
pub use problem::Problem;
