//! Table tests of the Corefile layer.
