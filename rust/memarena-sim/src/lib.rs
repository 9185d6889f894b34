//! memarena-sim: discrete-event simulator and serving model (skeleton; see the serving issue).
#![forbid(unsafe_code)]
