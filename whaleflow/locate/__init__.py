"""Finding the animal in the frame: a box model learned from a few hundred boxes, and a
label-free one, so whole-frame photos are cropped like the seed's detector cropped them.

* :mod:`.iou` — IoU of boxes (the model's score and its quality target);
* :mod:`.box_augment` — one affine per sample moving image and box together;
* :mod:`.box_net` — frozen pretrained trunk + a head where every cell votes for the box;
* :mod:`.fitting` — the fit on the listed photos (features of augmented views made once);
* :mod:`.box_model` — predict, save, load; :mod:`.auto_box` — the label-free boxer;
* :mod:`.boxer` — open either from its file; :mod:`.box_source` — what ``prepare`` crops to;
* :mod:`.cli` — ``whaleflow boxes fit`` / ``whaleflow boxes predict``.
"""
