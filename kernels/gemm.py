def linear(*a, **k): raise NotImplementedError
