"""Temporary re-export for the notebooks (issue 17)."""

from hierstudy.hierarchy.wordnet import INSTALL_HINT as INSTALL_HINT
from hierstudy.hierarchy.wordnet import LEXNAMES as LEXNAMES
from hierstudy.hierarchy.wordnet import WordNetError as WordNetError
from hierstudy.hierarchy.wordnet import build_nltk_folder as build_nltk_folder
from hierstudy.hierarchy.wordnet import cache_dir as cache_dir
from hierstudy.hierarchy.wordnet import cifar_hierarchy as cifar_hierarchy
from hierstudy.hierarchy.wordnet import cifar_synsets as cifar_synsets
from hierstudy.hierarchy.wordnet import debian_wordnet_dir as debian_wordnet_dir
from hierstudy.hierarchy.wordnet import imagenet_hierarchy as imagenet_hierarchy
from hierstudy.hierarchy.wordnet import install_debian_wordnet as install_debian_wordnet
from hierstudy.hierarchy.wordnet import load_wordnet as load_wordnet
from hierstudy.hierarchy.wordnet import synset_hierarchy as synset_hierarchy
from hierstudy.hierarchy.wordnet import synset_of as synset_of
from hierstudy.hierarchy.wordnet import timm_synsets as timm_synsets
from hierstudy.hierarchy.wordnet import wnid as wnid
