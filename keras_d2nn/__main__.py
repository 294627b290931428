"""`python -m keras_d2nn ...` runs the command line."""

from keras_d2nn.cli import run

if __name__ == "__main__":
    run()
