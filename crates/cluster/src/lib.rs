//! Module `cluster`: declares its part of the environment; plan, apply and destroy go through the engine.
