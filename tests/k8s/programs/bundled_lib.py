"""User code in a module of its own: it reaches the pods in the run's code bundle (the tasks of ``bundled.py``, pickled
by value, refer to it by name)."""


def shout(text: str) -> str:
    return text.upper() + "!"
