"""One exception type for mistakes a user can fix; entry points print it as one sentence."""


class HarpError(Exception):
    """A user-facing error: bad input, a missing model or dataset, an impossible setting."""
