"""panflow's weather domain: probabilistic forecasts on latitude-longitude grids (xarray, zarr, netCDF)."""

__version__ = "0.1.0"
