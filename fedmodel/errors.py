"""The one exception type for errors a user can cause and fix."""


class FedmodelError(Exception):
    """A problem with the user's input, configuration or privacy budget.

    The message names the file, row, key or value at fault and what to do about it.
    The CLI prints it without a traceback.
    """
