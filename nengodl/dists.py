"""Weight-initialisation distributions (``nengodl.dists``), as in NengoDL 3.

These are ordinary `nengo.dists.Distribution` objects, so they work wherever
nengo takes a distribution, with `nengo.Simulator` as well as `nengodl.Simulator`:
connection transforms (``nengo.Connection(a.neurons, b.neurons,
transform=nengodl.dists.Glorot())``), ``nengo.Dense(shape, init=...)``, encoders.

A sample of shape ``(n, d)`` is read as a weight matrix with ``n`` outputs and
``d`` inputs, the layout of a nengo transform ``(size_out, size_in)``: its
``fan_out`` is ``n`` and its ``fan_in`` is ``d`` (1 when ``d`` is None).
"""

import numpy as np
from nengo.dists import Distribution
from nengo.params import EnumParam, NumberParam

__all__ = ["Glorot", "He", "TruncatedNormal", "VarianceScaling"]


class TruncatedNormal(Distribution):
    """A normal distribution whose values far from the mean are drawn again.

    Every value further than ``limit`` from ``mean`` is replaced by a new draw
    from the same normal distribution, until all are within the limit. The
    result is a normal distribution truncated to ``[mean - limit, mean + limit]``;
    its standard deviation is therefore smaller than ``stddev``.

    Parameters
    ----------
    mean : float
        Mean of the normal distribution.
    stddev : float
        Standard deviation of the normal distribution before truncation (> 0).
    limit : float, optional
        Largest distance from the mean kept (> 0). None (the default) means
        ``2 * stddev``; the value is fixed when the distribution is made.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> dist = nengodl.dists.TruncatedNormal(stddev=0.5)
    >>> dist.limit
    1.0
    >>> x = dist.sample(100, 3, rng=np.random.RandomState(0))
    >>> x.shape, bool(np.all(np.abs(x) <= 1.0))
    ((100, 3), True)
    """

    mean = NumberParam("mean")
    stddev = NumberParam("stddev", low=0, low_open=True)
    limit = NumberParam("limit", low=0, low_open=True)

    def __init__(self, mean=0, stddev=1, limit=None):
        super().__init__()
        self.mean = mean
        self.stddev = stddev
        self.limit = 2 * self.stddev if limit is None else limit

    def sample(self, n, d=None, rng=np.random):
        """Draw samples.

        Parameters
        ----------
        n : int
            Number of samples.
        d : int, optional
            Number of dimensions: the result is ``(n, d)``, or ``(n,)`` when None.
        rng : numpy.random.RandomState, optional
            Random number generator.

        Returns
        -------
        numpy.ndarray
            The samples, ``(n,)`` or ``(n, d)``.
        """
        x = rng.normal(loc=self.mean, scale=self.stddev, size=self._sample_shape(n, d))
        outside = np.abs(x - self.mean) > self.limit
        count = int(np.sum(outside))
        while count > 0:
            x[outside] = rng.normal(loc=self.mean, scale=self.stddev, size=count)
            outside = np.abs(x - self.mean) > self.limit
            count = int(np.sum(outside))
        return x


class VarianceScaling(Distribution):
    """Weights with a variance scaled by the matrix's fan-in and/or fan-out.

    With ``fan`` the number of inputs (``mode="fan_in"``), of outputs
    (``"fan_out"``) or their mean (``"fan_avg"``), the target variance is
    ``v = scale / fan``. ``distribution="uniform"`` draws from
    ``Uniform(-sqrt(3 v), sqrt(3 v))``, whose variance is exactly ``v``;
    ``"normal"`` draws from `TruncatedNormal` with ``stddev=sqrt(v)`` cut at
    two standard deviations. As in NengoDL 3, that standard deviation is not
    corrected for the truncation, so the variance of the normal samples is
    about ``0.774 v``.

    For a sample of shape ``(n, d)``, ``fan_out`` is ``n`` and ``fan_in`` is
    ``d`` (1 when ``d`` is None): the layout of a nengo transform
    ``(size_out, size_in)``.

    Parameters
    ----------
    scale : float
        Overall scale of the variance (> 0).
    mode : "fan_in" or "fan_out" or "fan_avg"
        What the variance is divided by.
    distribution : "uniform" or "normal"
        Shape of the distribution.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> dist = nengodl.dists.VarianceScaling(scale=2, mode="fan_in")
    >>> w = dist.sample(1000, 50, rng=np.random.RandomState(0))
    >>> bool(np.max(np.abs(w)) <= np.sqrt(3 * 2 / 50))
    True
    """

    scale = NumberParam("scale", low=0, low_open=True)
    mode = EnumParam("mode", values=("fan_in", "fan_out", "fan_avg"))
    distribution = EnumParam("distribution", values=("uniform", "normal"))

    def __init__(self, scale=1, mode="fan_avg", distribution="uniform"):
        super().__init__()
        self.scale = scale
        self.mode = mode
        self.distribution = distribution

    def _variance_scale(self):
        """The numerator of the variance (``scale``; `He` squares it)."""
        return self.scale

    def variance(self, n, d=None):
        """The target variance ``scale / fan`` for a sample of shape ``(n, d)``.

        Parameters
        ----------
        n : int
            Number of samples (the fan-out).
        d : int, optional
            Number of dimensions (the fan-in; 1 when None).

        Returns
        -------
        float
            The variance of the uniform samples (the normal ones, truncated,
            have about 0.774 times this).
        """
        fan_in, fan_out = (1 if d is None else d), n
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
        return self._variance_scale() / fan[self.mode]

    def sample(self, n, d=None, rng=np.random):
        """Draw samples.

        Parameters
        ----------
        n : int
            Number of samples (the fan-out of a weight matrix).
        d : int, optional
            Number of dimensions (the fan-in): the result is ``(n, d)``, or
            ``(n,)`` when None.
        rng : numpy.random.RandomState, optional
            Random number generator.

        Returns
        -------
        numpy.ndarray
            The samples, ``(n,)`` or ``(n, d)``.
        """
        shape = self._sample_shape(n, d)
        if 0 in shape:
            return np.zeros(shape)
        var = self.variance(n, d)
        if self.distribution == "uniform":
            limit = np.sqrt(3 * var)
            return rng.uniform(-limit, limit, size=shape)
        return TruncatedNormal(stddev=np.sqrt(var)).sample(n, d, rng=rng)


class Glorot(VarianceScaling):
    """Glorot (Xavier) initialisation: `VarianceScaling` with ``mode="fan_avg"``.

    The variance is ``scale / ((fan_in + fan_out) / 2)``, from Glorot and Bengio
    (2010), "Understanding the difficulty of training deep feedforward neural
    networks".

    Parameters
    ----------
    scale : float
        Scale of the variance (> 0); usually 1.
    distribution : "uniform" or "normal"
        Shape of the distribution (see `VarianceScaling`).

    Examples
    --------
    >>> import nengo, nengodl
    >>> with nengo.Network() as net:
    ...     a, b = nengo.Node([1, 2]), nengo.Node(size_in=3)
    ...     conn = nengo.Connection(a, b, transform=nengodl.dists.Glorot())
    >>> conn.transform.init
    Glorot()
    """

    def __init__(self, scale=1, distribution="uniform"):
        super().__init__(scale=scale, mode="fan_avg", distribution=distribution)


class He(VarianceScaling):
    """He initialisation: `VarianceScaling` on the fan-in, ``scale`` squared.

    The variance is ``scale ** 2 / fan_in``, from He et al. (2015), "Delving deep
    into rectifiers: surpassing human-level performance on ImageNet
    classification". (``scale`` keeps the value given; NengoDL 3 stored its square.)

    Parameters
    ----------
    scale : float
        Gain on the standard deviation (> 0); ``sqrt(2)`` for rectified linear
        units, otherwise usually 1.
    distribution : "uniform" or "normal"
        Shape of the distribution (see `VarianceScaling`).

    Examples
    --------
    >>> import nengodl
    >>> nengodl.dists.He(scale=2).variance(10, 4)
    1.0
    """

    def __init__(self, scale=1, distribution="normal"):
        super().__init__(scale=scale, mode="fan_in", distribution=distribution)

    def _variance_scale(self):
        return self.scale**2
