"""The pyautodiff demo: the seed examples of the 2012 announcement, and a little more.

The demo ships inside the package (python/autodiff/demo.py) so that an installed wheel
runs it too: `python -m autodiff demo`."""

from autodiff.demo import main

main()
