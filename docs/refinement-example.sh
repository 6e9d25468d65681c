set -e
COMMON="-default_F 100 -lambda 1 -N 5 -pixel 0.2 -detpixels 256"
nbsim run -cell 70 80 90 75 85 95 -misset 10 20 30 -distance 60 -Xbeam 25.6 -Ybeam 25.6 $COMMON \
    -seed 7 -noisefile truth.img -nopgm -noprogress > truth.log
nbsim refine -cell 70.7 79.2 90.9 75.75 84.15 95.95 -misset 10.2 19.8 30.2 -distance 60.6 \
    -Xbeam 25.7 -Ybeam 25.5 $COMMON \
    --observed truth.img --refine cell,distance,beam_center,misset --json refined.json
