"""Packaging for Scrapyd: ``scrapyd-deploy`` builds the project egg from this file.

Everything under ``imgscraper/`` goes into the egg, data files included (read
them with ``pkgutil.get_data("imgscraper", ...)``, never by path).
"""

from setuptools import find_packages, setup

from imgscraper import __version__

setup(
    name="imgscraper",
    version=__version__,
    packages=find_packages(include=["imgscraper", "imgscraper.*"]),
    package_data={"imgscraper": ["**/*"]},
    exclude_package_data={"": ["__pycache__/*", "*.py[co]"]},
    entry_points={"scrapy": ["settings = imgscraper.settings"]},
    zip_safe=True,
)
