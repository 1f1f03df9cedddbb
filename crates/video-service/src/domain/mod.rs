//! Rules about videos, free of I/O and of protobuf. Pagination is shared:
//! [`platform::pagination`].
