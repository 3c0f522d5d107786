//! robofleet-e2e: the end-to-end tests of Robofleet (in `tests/`), against the local stack as a
//! user starts it.
//!
//! The library holds no code of its own: it compiles the Rust examples of the manual in `docs/`
//! as doctests, so an example that stops matching the API fails `make test`.

#[cfg(doctest)]
#[doc = include_str!("../../docs/functions.md")]
pub struct FunctionsDocs;

#[cfg(doctest)]
#[doc = include_str!("../../docs/local-stack.md")]
pub struct LocalStackDocs;

#[cfg(doctest)]
#[doc = include_str!("../../docs/template-and-deploy.md")]
pub struct TemplateAndDeployDocs;

#[cfg(doctest)]
#[doc = include_str!("../../docs/architecture.md")]
pub struct ArchitectureDocs;

#[cfg(doctest)]
#[doc = include_str!("../../docs/operations.md")]
pub struct OperationsDocs;

#[cfg(doctest)]
#[doc = include_str!("../../docs/simulator.md")]
pub struct SimulatorDocs;

#[cfg(doctest)]
#[doc = include_str!("../../docs/benchmarks.md")]
pub struct BenchmarksDocs;

#[cfg(doctest)]
#[doc = include_str!("../../docs/developing.md")]
pub struct DevelopingDocs;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct Readme;
